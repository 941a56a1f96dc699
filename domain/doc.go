// Package domain is mastertrust's pure business core: money and units, the
// rounding rules, the catalogue of assets and risk profiles, the dealing
// calendar, the pot aggregate (Decide and Apply), rebalancing maths, and
// netting and allocation of a dealing day's trades.
//
// Nothing here performs I/O, talks to actors or reads the wall clock: every
// input, the time included, is passed in. Tests enforce it: the layer table
// of internal/repotest (TestLayers) what this package may import, and
// TestDomainReadsNoClock the clock.
//
// docs/domain.md states the business rules this package implements and the
// five numbered invariants that code and tests cite as "invariant N"
// (CheckInvariants lists them too).
package domain
