package history_test

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/stretchr/testify/require"

	"github.com/acme/mastertrust/domain"
)

// stateDiff walks want and got with reflect like reflect.DeepEqual and
// returns the path of the first difference ("" when none), with two
// differences from it: numbers (domain.Money, Units, Price, Weight, any
// type with Decimal() decimal.Decimal) and instants and dates (any type with
// an Equal method) compare by value, not by representation, and a nil slice
// equals an empty one. A decoded zero decimal has no big.Int where a
// computed one has a zero big.Int, and a decoded instant is in UTC where
// one made by the clock is local: the same values, which DeepEqual calls
// different.
func stateDiff(want, got any) string {
	return diffValues("", reflect.ValueOf(want), reflect.ValueOf(got))
}

var decimalType = reflect.TypeFor[decimal.Decimal]()

func diffValues(path string, a, b reflect.Value) string {
	if a.IsValid() != b.IsValid() {
		return path + ": one is missing"
	}
	if !a.IsValid() {
		return ""
	}
	if a.Type() != b.Type() {
		return fmt.Sprintf("%s: types %s and %s", path, a.Type(), b.Type())
	}
	if m := a.MethodByName("Decimal"); m.IsValid() && m.Type().NumIn() == 0 && m.Type().NumOut() == 1 && m.Type().Out(0) == decimalType {
		x, y := m.Call(nil)[0].Interface().(decimal.Decimal), b.MethodByName("Decimal").Call(nil)[0].Interface().(decimal.Decimal)
		if !x.Equal(y) {
			return fmt.Sprintf("%s: %s and %s", path, x, y)
		}
		return ""
	}
	if m := a.MethodByName("Equal"); m.IsValid() && m.Type().NumIn() == 1 && m.Type().In(0) == a.Type() {
		if !m.Call([]reflect.Value{b})[0].Bool() {
			return fmt.Sprintf("%s: %v and %v", path, a.Interface(), b.Interface())
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return path + ": one is nil"
			}
			return ""
		}
		return diffValues(path, a.Elem(), b.Elem())
	case reflect.Struct:
		for i := range a.NumField() {
			f := a.Type().Field(i)
			if !f.IsExported() {
				return fmt.Sprintf("%s.%s: an unexported field of %s, which stateDiff cannot compare", path, f.Name, a.Type())
			}
			if d := diffValues(path+"."+f.Name, a.Field(i), b.Field(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d and %d elements", path, a.Len(), b.Len())
		}
		for i := range a.Len() {
			if d := diffValues(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i)); d != "" {
				return d
			}
		}
		return ""
	case reflect.Map:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: %d and %d entries", path, a.Len(), b.Len())
		}
		for _, k := range a.MapKeys() {
			if d := diffValues(fmt.Sprintf("%s[%v]", path, k), a.MapIndex(k), b.MapIndex(k)); d != "" {
				return d
			}
		}
		return ""
	default:
		if !a.CanInterface() || a.Interface() != b.Interface() {
			return fmt.Sprintf("%s: %v and %v", path, a, b)
		}
		return ""
	}
}

// TestStateDiff proves the comparison the tests lean on finds a difference
// anywhere in an order (a field, a number, an instant, a trade too many)
// and only there: a zero decoded and a zero computed, or an instant in two
// locations, are the same.
func TestStateDiff(t *testing.T) {
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	london, err := time.LoadLocation(domain.DefaultLocationName)
	require.NoError(t, err)
	order := func() *domain.Order {
		return &domain.Order{ID: "M1-1", Type: domain.OrderBuy, CreatedAt: at, Trades: []*domain.Trade{{ID: "M1-2", OrderID: "M1-1",
			Cash: domain.MustMoney("10.00"), Execution: &domain.Execution{Price: domain.MustPrice("1.5"), ExecutedAt: at}}}}
	}
	same := order()
	same.CreatedAt = at.In(london)
	same.Trades[0].PendingCash = domain.MustMoney("1.00").Sub(domain.MustMoney("1.00"))
	same.Trades[0].Funding = []domain.ProceedsShare{}
	require.Empty(t, stateDiff(order(), same))

	changes := map[string]func(o *domain.Order){
		"Type":      func(o *domain.Order) { o.Type = domain.OrderSell },
		"CreatedAt": func(o *domain.Order) { o.CreatedAt = at.Add(time.Nanosecond) },
		"Cash":      func(o *domain.Order) { o.Trades[0].Cash = domain.MustMoney("10.01") },
		"Price":     func(o *domain.Order) { o.Trades[0].Execution.Price = domain.MustPrice("1.50001") },
		"Execution": func(o *domain.Order) { o.Trades[0].Execution = nil },
		"Trades":    func(o *domain.Order) { o.Trades = append(o.Trades, &domain.Trade{}) },
		"Funding": func(o *domain.Order) {
			o.Trades[0].Funding = []domain.ProceedsShare{{SellTradeID: "M1-3", Fraction: domain.MustWeight("0.5")}}
		},
	}
	for field, change := range changes {
		o := order()
		change(o)
		require.Contains(t, stateDiff(order(), o), field, "a change of %s", field)
	}
}
