package actors_test

import (
	"context"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/acme/mastertrust/actors"
	"github.com/acme/mastertrust/cluster"
	"github.com/acme/mastertrust/codec"
	"github.com/acme/mastertrust/domain"
	"github.com/acme/mastertrust/internal/problem"
	"github.com/acme/mastertrust/internal/testkit"
	"github.com/acme/mastertrust/persistence"
	"github.com/acme/mastertrust/proto/pb"
)

// A system grain whose stream another activation appended to (placement
// is eventually consistent: for a while a grain can be active on two
// members) meets a version conflict at its next append. It must answer
// that request with a retryable failure and stop, so that the retry
// reaches a fresh activation that reloads the stream: the stale one would
// repeat the conflict at every rerun. Each test activates a grain, appends
// to its stream behind its back as a second activation would, and calls it.

// dealingNode is one member hosting the dealing grains on j.
func dealingNode(t *testing.T, j persistence.Journal) *cluster.Node {
	t.Helper()
	logger, level := testkit.Logger(t)
	cal, err := domain.NewCalendar(domain.CalendarConfig{Location: time.UTC})
	require.NoError(t, err)
	deps := &actors.DealingDeps{Journal: j, Catalogue: domain.DefaultCatalogue(), Calendar: cal, Market: actors.NewMarketState(), Logger: logger}
	cfg := cluster.Config{ClusterName: "actors-grain-conflict", Provider: cluster.ProviderInProcess, InProcess: cluster.NewInProcess(2 * time.Second),
		RequestTimeout: 5 * time.Second, Logger: logger, LibraryLogLevel: level, Kinds: deps.Kinds()}
	if testkit.Race {
		cfg.GossipInterval, cfg.HeartbeatExpiration = time.Hour, 2*time.Hour
	}
	node, err := cluster.Start(cfg)
	require.NoError(t, err)
	t.Cleanup(node.Kill)
	deps.SetNode(node)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, node.WaitForMembers(ctx, 1))
	return node
}

// appendBehind appends events to a system stream at expected version as
// another activation of its grain would.
func appendBehind(t *testing.T, j persistence.Journal, stream string, expected uint64, events ...proto.Message) {
	t.Helper()
	req := persistence.AppendRequest{Stream: stream, Group: actors.SystemGroup(j), ExpectedVersion: expected}
	for _, m := range events {
		typ, data, err := codec.EncodeSystemEvent(m)
		require.NoError(t, err)
		req.Events = append(req.Events, persistence.NewEvent{Type: typ, Data: data})
	}
	_, err := j.Append(context.Background(), req)
	require.NoError(t, err)
}

// TestAssetBookAfterAVersionConflict: an asset book refusing an execution
// report finds that another activation recorded a refusal first. It
// answers operation-failed (retryable), and the retry, served by a fresh
// activation, records its refusal after the other one's.
func TestAssetBookAfterAVersionConflict(t *testing.T) {
	j := memJournal(t)
	node := dealingNode(t, j)
	const day, asset = "2026-11-23", "GB00BD8R3K42"
	book := func(cmd *pb.AssetBookRequest) *pb.AssetBookResponse {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		resp, err := cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*pb.AssetBookResponse, error) {
			return pb.GetAssetBookGrainClient(node.Cluster(), day+"/"+asset).Handle(cmd, opts...)
		})
		require.NoError(t, err)
		return resp
	}
	report := func(id string) *pb.AssetBookRequest {
		return &pb.AssetBookRequest{Command: &pb.AssetBookRequest_RecordExecution{RecordExecution: &pb.ExecutionReport{
			ClOrdId: "nobody's", ExecutionId: id, Asset: asset, DealingDate: day, Units: "1", Price: "1", Cash: "1.00"}}}
	}

	status := book(&pb.AssetBookRequest{Command: &pb.AssetBookRequest_Status{Status: &pb.BookStatus{}}})
	require.Empty(t, status.GetProblem().GetCode())
	require.Empty(t, status.GetRefused())
	appendBehind(t, j, "book/"+day+"/"+asset, 0, &pb.ExecutionRefused{
		Report: report("other").GetRecordExecution(), Reason: "refused by the other activation"})

	first := book(report("mine"))
	require.Equal(t, problem.OperationFailed, first.GetProblem().GetCode(), "the stale activation answered %v", first)
	again := book(report("mine"))
	require.Empty(t, again.GetProblem().GetCode(), "the retry answered: %s", again.GetProblem().GetDetail())
	var refused []string
	for _, r := range again.GetRefused() {
		refused = append(refused, r.GetReport().GetExecutionId())
	}
	require.Equal(t, []string{"other", "mine"}, refused)
}

// TestPricesAfterAVersionConflict: a prices grain publishing a date's
// prices finds that another activation published them first. It answers
// operation-failed (retryable), and the retry, served by a fresh
// activation, finds the same prices recorded by the other one.
func TestPricesAfterAVersionConflict(t *testing.T) {
	j := memJournal(t)
	node := dealingNode(t, j)
	op := actors.Operator{Node: node, CallTimeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	day := domain.MustDate("2026-11-23")
	cat := domain.DefaultCatalogue()
	prices, encoded := map[domain.ISIN]domain.Price{}, map[string]string{}
	for _, a := range cat.Assets() {
		p, err := domain.ParsePrice("1.5", a.PriceDecimals)
		require.NoError(t, err)
		prices[a.ISIN], encoded[string(a.ISIN)] = p, p.StringFixed(a.PriceDecimals)
	}

	_, err := op.Prices(ctx, day)
	var oe *actors.OperatorError
	require.ErrorAs(t, err, &oe)
	require.Equal(t, problem.NotFound, oe.Code)
	appendBehind(t, j, "prices/"+day.String(), 0, &pb.PricesPublished{Date: day.String(), Prices: encoded, By: "other"})

	publication := actors.PricesPublication{Date: day, Prices: prices, By: "me"}
	_, err = op.PublishPrices(ctx, publication)
	require.ErrorAs(t, err, &oe, "the stale activation answered %v", err)
	require.Equal(t, problem.OperationFailed, oe.Code)
	resp, err := op.PublishPrices(ctx, publication)
	require.NoError(t, err)
	require.Len(t, resp.GetHistory(), 1)
	require.Equal(t, "other", resp.GetHistory()[0].GetBy())
}

// TestSystemGrainAnswersRequestsBehindItsPill: protoactor drops the
// messages still in a stopped actor's mailbox. A request queued behind the
// pill that stops an asset book (placement's, here while the book waits for
// an append) is answered with the kind's failure, instead of leaving its
// caller to wait for its timeout (a dealing step's is minutes).
func TestSystemGrainAnswersRequestsBehindItsPill(t *testing.T) {
	gate := &gatedJournal{Journal: memJournal(t), blocked: map[string]chan struct{}{}, waiting: make(chan string, 8)}
	node := dealingNode(t, gate)
	t.Cleanup(gate.releaseAll)
	const day, asset = "2026-11-23", "GB00BD8R3K42"
	identity, stream := day+"/"+asset, "book/"+day+"/"+asset
	request := func(cmd *pb.AssetBookRequest) *protocluster.GrainRequest {
		data, err := proto.Marshal(cmd)
		require.NoError(t, err)
		return &protocluster.GrainRequest{MessageData: data}
	}
	status := request(&pb.AssetBookRequest{Command: &pb.AssetBookRequest_Status{Status: &pb.BookStatus{}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cluster.Call(ctx, node, func(opts ...protocluster.GrainCallOption) (*pb.AssetBookResponse, error) {
		return pb.GetAssetBookGrainClient(node.Cluster(), identity).Handle(&pb.AssetBookRequest{
			Command: &pb.AssetBookRequest_Status{Status: &pb.BookStatus{}}}, opts...)
	})
	require.NoError(t, err)
	pid := node.Cluster().Get(identity, actors.AssetBookKind)
	require.NotNil(t, pid)

	root := node.Cluster().ActorSystem.Root
	gate.block(stream)
	first := root.RequestFuture(pid, request(&pb.AssetBookRequest{Command: &pb.AssetBookRequest_RecordExecution{RecordExecution: &pb.ExecutionReport{
		ClOrdId: "nobody's", ExecutionId: "first", Asset: asset, DealingDate: day, Units: "1", Price: "1", Cash: "1.00"}}}), 5*time.Second)
	<-gate.waiting // the book waits for its append
	root.Poison(pid)
	behind := root.RequestFuture(pid, status, 5*time.Second)
	gate.release(stream)

	start := time.Now()
	res, err := first.Result()
	require.NoError(t, err)
	require.Empty(t, res.(*pb.AssetBookResponse).GetProblem().GetCode())
	res, err = behind.Result()
	require.NoError(t, err, "the request behind the pill got no answer")
	require.Equal(t, problem.OperationFailed, res.(*pb.AssetBookResponse).GetProblem().GetCode())
	require.Less(t, time.Since(start), 2*time.Second)
}
