// Package natsauth is who may do what on the platform's NATS server: the
// roles, each one's publish and subscribe permissions (the one table,
// Grants), the files that hold the server's users, the roles' passwords and
// the TLS certificates (a secrets directory, see Ensure), the options a
// client connects with, and Redact, which takes passwords out of URLs
// before they are logged. docs/security.md tells the same story for people.
package natsauth

import (
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/acme/mastertrust/custodian"
)

// Role is what a NATS client is for. A role's user name is the role's name
// (a secrets directory holds one user per role).
type Role string

// The roles.
const (
	// RoleNode is a cluster member (and dev's node): the journal, orders to
	// the custodian, reports and prices in, operator prices out, contract
	// notes out, holdings requests.
	RoleNode Role = "node"
	// RoleGateway is a gateway: it calls the cluster over gRPC and uses
	// NATS only to follow the cluster's membership (the members' bucket),
	// without registering in it.
	RoleGateway Role = "gateway"
	// RoleCustodian is the custodian (the simulator in dev): orders in,
	// execution reports out, prices read, holdings answered.
	RoleCustodian Role = "custodian"
	// RolePrices is the fund managers' price feed: it publishes closing
	// prices (compare-and-set on the date's subject, so it reads them too).
	RolePrices Role = "prices"
	// RoleNotifications is what delivers members' notifications (email,
	// app push): it reads the notifications stream, nothing else.
	RoleNotifications Role = "notifications"
	// RoleOperator is the operators' tools (the nats CLI in an incident):
	// they read every stream, the journal included, and manage consumers,
	// but publish nothing the platform acts on and delete no stream.
	RoleOperator Role = "operator"
	// RoleAudit reads the protocol's streams and the notifications, one
	// message at a time; it creates nothing, not even a consumer.
	RoleAudit Role = "audit"
)

// Roles lists every role, in the order of Grants.
func Roles() []Role {
	roles := make([]Role, len(grants))
	for i, g := range grants {
		roles[i] = g.Role
	}
	return roles
}

// Subjects and streams the table names. The custodian's come from its
// protocol; the notifications' and the journal's are repeated here
// (platform imports this package) and a test checks they match.
const (
	notificationsStream   = "NOTIFICATIONS"
	notificationsSubjects = "notifications.>"
	// journalSubjects are the JetStream journal's subjects
	// (persistence/jetstream with the platform's prefix "mt").
	journalSubjects = "mt.>"
	// membersStream and membersSubjects are the cluster's membership
	// bucket (cluster/natskv's DefaultBucket, a JetStream KV bucket: its
	// stream is "KV_" + the bucket, its keys are subjects under "$KV." +
	// the bucket).
	membersStream   = "KV_mastertrust_members"
	membersSubjects = "$KV.mastertrust_members.>"
	// inboxRoot is the root of every client's reply subjects; a role's
	// inbox prefix is inboxRoot + "." + role (InboxPrefix).
	inboxRoot = "_INBOX"
)

// InboxPrefix is the inbox prefix role's connections use: its replies
// come only there, and no other role may subscribe to it, so that no one
// reads another role's replies (a node's journal reads, the custodian's
// holdings statements). The nats CLI takes it as --inbox-prefix.
func InboxPrefix(role Role) string { return inboxRoot + "." + string(role) }

// Grant is one row of the table: what a role may publish and subscribe to,
// and why.
type Grant struct {
	Role   Role
	Reason string
	// Publish and Subscribe are the subjects allowed; anything else is
	// refused. The role's inbox is added to Subscribe by Permissions.
	Publish, Subscribe []string
	// Responses lets the role answer requests it received (publish once to
	// the request's reply subject, within a minute).
	Responses bool
}

// JetStream API subjects ($JS.API.…): what a client may ask of streams.
func streamAdmin(stream string) []string { // create or update the stream's definition, read it
	return []string{"$JS.API.STREAM.CREATE." + stream, "$JS.API.STREAM.UPDATE." + stream, "$JS.API.STREAM.INFO." + stream}
}

func streamInfo(stream string) []string { return []string{"$JS.API.STREAM.INFO." + stream} }

// streamGet reads messages by sequence or subject (the leader's get and
// the direct get, which a stream with AllowDirect answers from any replica).
func streamGet(stream string) []string {
	return []string{"$JS.API.STREAM.MSG.GET." + stream, "$JS.API.DIRECT.GET." + stream, "$JS.API.DIRECT.GET." + stream + ".>"}
}

// consume creates, reads and pulls from consumers of the stream and
// acknowledges their messages.
func consume(stream string) []string {
	return []string{"$JS.API.CONSUMER.CREATE." + stream + ".>", "$JS.API.CONSUMER.INFO." + stream + ".>",
		"$JS.API.CONSUMER.MSG.NEXT." + stream + ".>", "$JS.ACK." + stream + ".>"}
}

// consumerAdmin also lists and deletes the stream's consumers.
func consumerAdmin(stream string) []string {
	return append(consume(stream), "$JS.API.CONSUMER.NAMES."+stream, "$JS.API.CONSUMER.LIST."+stream,
		"$JS.API.CONSUMER.DELETE."+stream+".>")
}

// watchMembers is what following the members' bucket takes: look it up
// (and create it if no member has yet), learn whether the server places
// expiry markers (the account's JetStream info), and watch it through an
// ordered consumer, which the client creates, answers the flow control of,
// and deletes when it stops.
var watchMembers = []string{"$JS.API.INFO", "$JS.API.STREAM.INFO." + membersStream, "$JS.API.STREAM.CREATE." + membersStream,
	"$JS.API.CONSUMER.CREATE." + membersStream, "$JS.API.CONSUMER.CREATE." + membersStream + ".>",
	"$JS.API.CONSUMER.DELETE." + membersStream + ".>", "$JS.FC." + membersStream + ".>"}

// listStreams is what the nats CLI asks first: the account's JetStream
// usage and the streams' names and infos.
var listStreams = []string{"$JS.API.INFO", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST"}

func join(lists ...[]string) []string { return slices.Concat(lists...) }

var (
	protocolStreams = []string{custodian.OrdersStream, custodian.ReportsStream, custodian.PricesStream, notificationsStream}
	custodianStream = []string{custodian.OrdersStream, custodian.ReportsStream, custodian.PricesStream}
)

func each(streams []string, f func(string) []string) []string {
	var out []string
	for _, s := range streams {
		out = append(out, f(s)...)
	}
	return out
}

// grants is the table: every role, what it may do, and why. Nothing is
// allowed that is not listed; what is not listed is what keeps a role to
// its job (who may not publish what is in docs/security.md).
var grants = []Grant{
	{
		Role: RoleNode,
		Reason: "the system of record: it owns the journal's streams and creates the protocol's and the notifications' " +
			"streams (any stream's definition and messages: the journal's stream names depend on its size); " +
			"it sends orders, records operators' prices on the feed, publishes contract notes and asks for holdings; " +
			"it consumes reports and prices; it puts and deletes its record in the members' bucket and watches it. " +
			"It may not publish execution reports, consume the orders or the notifications, or delete or purge a stream",
		Publish: join(
			[]string{journalSubjects, custodian.OrdersSubjects, custodian.PricesSubjects, notificationsSubjects, custodian.HoldingsSubject,
				membersSubjects},
			watchMembers,
			[]string{"$JS.API.STREAM.CREATE.*", "$JS.API.STREAM.UPDATE.*", "$JS.API.STREAM.INFO.*",
				"$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.*", "$JS.API.DIRECT.GET.*.>"},
			consume(custodian.ReportsStream), consume(custodian.PricesStream)),
	},
	{
		Role: RoleGateway,
		Reason: "a cluster client: it watches the members' bucket to know the members (creating the bucket if no " +
			"member has yet) and nothing else; it puts no record, so it cannot pose as a member or remove one",
		Publish: watchMembers,
	},
	{
		Role: RoleCustodian,
		Reason: "executes ACME's orders: it consumes orders, publishes execution reports (the only role that may), " +
			"reads a date's prices to price an order, and answers holdings requests; it ensures the protocol's " +
			"streams at start like the node",
		Publish: join([]string{custodian.ReportsSubjects}, each(custodianStream, streamAdmin),
			consume(custodian.OrdersStream), streamGet(custodian.PricesStream)),
		Subscribe: []string{custodian.HoldingsSubject},
		Responses: true,
	},
	{
		Role: RolePrices,
		Reason: "the fund managers' closing prices: it publishes a date's feed with compare-and-set, " +
			"so it reads the date's last message too; nothing else",
		Publish: join([]string{custodian.PricesSubjects}, streamInfo(custodian.PricesStream), streamGet(custodian.PricesStream)),
	},
	{
		Role: RoleNotifications,
		Reason: "delivers members' contract notes (email, app push): it consumes the notifications stream and " +
			"manages its own consumers there; it reads nothing else and publishes nothing",
		Publish: join(streamInfo(notificationsStream), consumerAdmin(notificationsStream), streamGet(notificationsStream)),
	},
	{
		Role: RoleOperator,
		Reason: "an operator's nats CLI in an incident: reads every stream (the journal too), inspects and resets " +
			"consumers; publishes no order, report, price, note or journal event, and changes or deletes no stream",
		Publish: join(listStreams, []string{"$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.*",
			"$JS.API.DIRECT.GET.*.>", "$JS.API.CONSUMER.CREATE.*.>", "$JS.API.CONSUMER.INFO.*.>",
			"$JS.API.CONSUMER.MSG.NEXT.*.>", "$JS.API.CONSUMER.NAMES.*", "$JS.API.CONSUMER.LIST.*",
			"$JS.API.CONSUMER.DELETE.*.>", "$JS.ACK.*.>"}),
	},
	{
		Role: RoleAudit,
		Reason: "read-only audit of what crossed the firm's boundary: the orders, reports, prices and notes, " +
			"message by message; no consumer (creating one could disturb a service's), no journal",
		Publish: join(listStreams, each(protocolStreams, streamInfo), each(protocolStreams, streamGet)),
	},
}

// Grants is the table, a copy.
func Grants() []Grant {
	out := make([]Grant, len(grants))
	for i, g := range grants {
		g.Publish, g.Subscribe = slices.Clone(g.Publish), slices.Clone(g.Subscribe)
		out[i] = g
	}
	return out
}

// responseExpiry bounds how long after a request its responder may answer.
const responseExpiry = time.Minute

// Permissions are role's server permissions: its grant, and its inbox to
// subscribe to. Nil and an error for an unknown role.
func Permissions(role Role) (*server.Permissions, error) {
	for _, g := range grants {
		if g.Role != role {
			continue
		}
		p := &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: slices.Clone(g.Publish)},
			Subscribe: &server.SubjectPermission{Allow: append(slices.Clone(g.Subscribe), InboxPrefix(role)+".>")},
		}
		if len(p.Publish.Allow) == 0 {
			// An empty allow list would allow everything.
			p.Publish.Deny = []string{">"}
		}
		if g.Responses {
			p.Response = &server.ResponsePermission{MaxMsgs: 1, Expires: responseExpiry}
		}
		return p, nil
	}
	return nil, fmt.Errorf("natsauth: unknown role %q", role)
}
