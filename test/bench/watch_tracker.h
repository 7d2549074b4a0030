// WatchTracker: the watching side of kvbench's watch-latency workload. One Watch stream with
// one watch over the key prefix, on one connection. Writers put the send time into the first
// 16 bytes of each value (EncodeSendTime); for each PUT event the tracker records
// receipt - send time. Writers also report each acknowledged Put's revision (OnPutAcked), so
// that events are matched to acknowledgements: the delay from acknowledgement to event is
// what the watch path adds beyond the write itself, and an acknowledged write whose event
// never comes is an error.
//
// Threads: Start, WaitForEvents, Stop and Report on one (the main) thread; OnPutAcked from the
// writers' pollers; the stream's completions on the poller of the queue given. Shared state
// is under mu_.
//
// Lifetime: the stub and queue must outlive the tracker; once Start was called, Stop() must
// return before the tracker is destroyed or the queue shut down.
#ifndef TEST_BENCH_WATCH_TRACKER_H_
#define TEST_BENCH_WATCH_TRACKER_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "test/bench/kv_load.h"
#include "test/bench/latency_histogram.h"
#include "test/bench/load_engine.h"

namespace bench {

class WatchTracker {
 public:
  // Bytes of a value that hold the send time.
  static constexpr int kSendTimeBytes = 16;
  static std::string EncodeSendTime(int64_t nanos);
  static bool DecodeSendTime(std::string_view value, int64_t* nanos);

  // Watches [key, range_end).
  WatchTracker(etcdserverpb::Watch::Stub* stub, grpc::CompletionQueue* cq, std::string key,
               std::string range_end);
  ~WatchTracker();

  // Opens the stream and creates the watch; returns once the server confirmed it, or with
  // the reason it did not (the stream's status, the server's cancel reason, a timeout).
  absl::Status Start(absl::Duration timeout);
  // A Put with this revision was acknowledged at `ack_nanos` (NowNanos()).
  void OnPutAcked(int64_t revision, int64_t ack_nanos);
  // Returns once every acknowledged Put's event has arrived, or after `timeout`.
  void WaitForEvents(absl::Duration timeout);
  // Cancels the stream and waits until gRPC is done with it.
  void Stop();
  // After Stop(): adds the watch figures and errors to `result`.
  void Report(LoadResult* result);

 private:
  void OnStarted(bool ok);
  void OnWritten(bool ok);
  void OnRead(bool ok);
  void OnFinished(bool ok);
  void HandleResponse(const etcdserverpb::WatchResponse& r, int64_t now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Asks for the stream's status once nothing else is in flight.
  void MaybeFinish() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  etcdserverpb::Watch::Stub* const stub_;
  grpc::CompletionQueue* const cq_;
  const std::string key_;
  const std::string range_end_;

  // Declared before the stream, which lives in the context's call arena.
  grpc::ClientContext ctx_;
  std::unique_ptr<
      grpc::ClientAsyncReaderWriter<etcdserverpb::WatchRequest, etcdserverpb::WatchResponse>>
      stream_;
  etcdserverpb::WatchRequest create_;
  etcdserverpb::WatchResponse response_;  // filled by the Read in flight
  grpc::Status finish_status_;            // filled by Finish
  CallbackCompletion started_{[this](bool ok) { OnStarted(ok); }};
  CallbackCompletion written_{[this](bool ok) { OnWritten(ok); }};
  CallbackCompletion read_{[this](bool ok) { OnRead(ok); }};
  CallbackCompletion finished_{[this](bool ok) { OnFinished(ok); }};

  absl::Mutex mu_;
  bool opened_ ABSL_GUARDED_BY(mu_) = false;  // Start() began the stream
  bool created_ ABSL_GUARDED_BY(mu_) = false;
  std::string failure_ ABSL_GUARDED_BY(mu_);  // why the watch is not (or no longer) working
  bool write_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool read_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_flag_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_by_us_ ABSL_GUARDED_BY(mu_) = false;
  // Revision -> time, for an acknowledgement waiting for its event and the other way round.
  std::map<int64_t, int64_t> acks_waiting_ ABSL_GUARDED_BY(mu_);
  std::map<int64_t, int64_t> events_waiting_ ABSL_GUARDED_BY(mu_);
  int64_t events_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t events_before_ack_ ABSL_GUARDED_BY(mu_) = 0;
  LatencyHistogram latency_ ABSL_GUARDED_BY(mu_);
  LatencyHistogram ack_to_event_ ABSL_GUARDED_BY(mu_);
  ClientTally errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace bench

#endif  // TEST_BENCH_WATCH_TRACKER_H_
