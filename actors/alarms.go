package actors

import (
	"context"

	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// The alarms stream keeps what the platform refused from outside and an
// operator must investigate: execution reports that match no order ACME
// sent (ExecutionRefused). Any grain may append to it (each refusal is
// appended once per execution id: a repeat finds it there), so an append
// that finds the stream moved reads it again and retries; reconciliation
// reads it and shows every refused report as a break until its book has a
// matching execution.
const alarmsStream = "alarms"

// alarmAppendAttemptsMax bounds the retries of an append to the alarms
// stream: each conflict means another refusal was appended in between.
const alarmAppendAttemptsMax = 8

// raiseAlarm appends refused to the alarms stream unless a refusal of the
// same execution id is there already; added says whether it appended.
func raiseAlarm(ctx context.Context, j persistence.Journal, refused *pb.ExecutionRefused) (added bool, err error) {
	return appendOnce(ctx, alarmAppendAttemptsMax, refused, func(ctx context.Context) (systemStream, bool, error) {
		s := systemStream{j: j, name: alarmsStream}
		present := false
		err := s.load(ctx, func(m proto.Message) error {
			if r, ok := m.(*pb.ExecutionRefused); ok && r.GetReport().GetExecutionId() == refused.GetReport().GetExecutionId() {
				present = true
			}
			return nil
		})
		return s, present, err
	})
}

// loadAlarms reads the refused reports of the alarms stream, one per
// execution id, oldest first.
func loadAlarms(ctx context.Context, j persistence.Journal) ([]*pb.ExecutionRefused, error) {
	var out []*pb.ExecutionRefused
	seen := map[string]bool{}
	s := systemStream{j: j, name: alarmsStream}
	err := s.load(ctx, func(m proto.Message) error {
		if r, ok := m.(*pb.ExecutionRefused); ok && !seen[r.GetReport().GetExecutionId()] {
			seen[r.GetReport().GetExecutionId()] = true
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
