// The machinery kvbench's workloads share: connections to the endpoints, completion queues
// with their polling threads, the budget that ends a closed-loop run, key naming and the
// per-client tallies.
//
// Model: every load-generating client is a small state machine with at most one gRPC
// operation in flight; the operation's tag is a Completion, and the polling thread of the
// client's completion queue calls its Done(). So 256 clients in flight need no more threads
// than pollers (one or two). A client touches its own state only from Done() (and from the
// thread that starts it, before its first operation), so client state needs no locks.
#ifndef TEST_BENCH_LOAD_ENGINE_H_
#define TEST_BENCH_LOAD_ENGINE_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "etcd/etcdserverpb/rpc.grpc.pb.h"
#include "test/bench/latency_histogram.h"

namespace bench {

// Monotonic nanoseconds, comparable only within this process.
inline int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Something waiting for one completion-queue event; its address is the gRPC tag.
class Completion {
 public:
  virtual ~Completion() = default;
  // `ok` is the completion queue's flag: false when the operation could not complete (for a
  // stream: the stream is over).
  virtual void Done(bool ok) = 0;
};

// A Completion that runs a function, for objects with several operations in flight at once
// (a watch stream reads while it writes).
class CallbackCompletion final : public Completion {
 public:
  explicit CallbackCompletion(absl::AnyInvocable<void(bool)> fn) : fn_(std::move(fn)) {}
  void Done(bool ok) override { fn_(ok); }

 private:
  absl::AnyInvocable<void(bool)> fn_;
};

// Connections and completion queues. Channel i goes to endpoint i mod (number of endpoints);
// each channel is its own TCP connection (gRPC would otherwise share one subchannel among
// channels with equal arguments). Queue j has its own polling thread.
//
// Threads: the accessors may be called from any thread. Shutdown() (or the destructor) must
// be called only once no operation is outstanding on any queue; it joins the pollers.
class LoadEngine {
 public:
  // Connects every channel (failing with Unavailable naming the endpoint if one does not
  // connect within `connect_timeout`) and starts the pollers.
  static absl::StatusOr<std::unique_ptr<LoadEngine>> Connect(
      const std::vector<std::string>& endpoints, int conns, int pollers,
      absl::Duration connect_timeout);
  ~LoadEngine();

  int conns() const { return static_cast<int>(kv_.size()); }
  int pollers() const { return static_cast<int>(queues_.size()); }
  etcdserverpb::KV::Stub* kv(int i) const { return kv_[i % kv_.size()].get(); }
  etcdserverpb::Watch::Stub* watch(int i) const { return watch_[i % watch_.size()].get(); }
  grpc::CompletionQueue* queue(int i) const { return queues_[i % queues_.size()].get(); }

  void Shutdown();

 private:
  LoadEngine() = default;

  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<etcdserverpb::KV::Stub>> kv_;
  std::vector<std::unique_ptr<etcdserverpb::Watch::Stub>> watch_;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  bool shut_down_ = false;
};

// Whether a client may start another operation: either a fixed number of operations shared
// by all clients, or anything started before a deadline. Thread-safe.
class Budget {
 public:
  static Budget Count(int64_t total) { return Budget(total, 0); }
  static Budget Until(int64_t deadline_nanos) { return Budget(-1, deadline_nanos); }

  // The operation's sequence number (0, 1, ...), or -1 once the budget is spent.
  int64_t Take();

 private:
  Budget(int64_t total, int64_t deadline) : total_(total), deadline_(deadline) {}

  const int64_t total_;     // -1: deadline mode
  const int64_t deadline_;  // NowNanos() value
  std::atomic<int64_t> next_{0};
};

// Keys of exactly `key_size` bytes: the prefix, then the key's number zero-padded.
class KeyFormat {
 public:
  KeyFormat(std::string prefix, int key_size) : prefix_(std::move(prefix)), key_size_(key_size) {}
  // REQUIRES: the number fits (see Fits).
  std::string Key(int64_t n) const;
  bool Fits(int64_t largest) const;
  // [prefix, prefix+1): the range that holds every key.
  const std::string& prefix() const { return prefix_; }
  std::string RangeEnd() const;

 private:
  std::string prefix_;
  int key_size_;
};

// What one client saw. Merged once the run is over.
struct ClientTally {
  int64_t ok = 0;
  LatencyHistogram latency;  // successful operations only
  // "UNAVAILABLE: etcdserver: no leader" -> how often.
  std::map<std::string, int64_t> errors;

  void RecordError(const grpc::Status& status);
  void RecordError(const std::string& what) { ++errors[what]; }
  int64_t error_count() const;
  void Merge(const ClientTally& other);
};

// "DEADLINE_EXCEEDED" and so on.
const char* StatusCodeName(grpc::StatusCode code);

}  // namespace bench

#endif  // TEST_BENCH_LOAD_ENGINE_H_
