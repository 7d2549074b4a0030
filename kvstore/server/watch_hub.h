// WatchHub: the watchers of one member, in the manner of etcd's watchableStore.
//
// Every committed write transaction reaches the hub through Notify(), on the Raft driver
// thread. A watcher is either
//   - synced: it has seen every matching event up to the hub's revision, and Notify() hands
//     it each new matching transaction at once, as one update; or
//   - unsynced: it is behind (it started at a past revision, or its stream's queue was full
//     when Notify() came), and the hub's catch-up thread feeds it from the store's history
//     (MvccStore::Events) in bounded chunks until it reaches the hub's revision, then moves
//     it back to synced. A watcher whose next revision falls below the compacted revision
//     is answered with canceled + compact_revision and stops, as in etcd.
// Notify() never blocks on a client: a watcher whose stream cannot take an update falls
// behind instead. The events of one revision always travel in one update (which the
// service may split only for a watch that asked for `fragment`).
//
// A WatchStream is the ordered queue of updates of one client stream (one gRPC Watch
// call). The hub queues there, in order: the answers to create, cancel and progress
// requests, events, progress notifications and compaction cancels. Its consumer (the
// service's sender) takes them off with Next(). Queues are bounded per watcher (pending
// updates) and per stream (pending event bytes); answers to the client's own requests are
// bounded by WaitForControlRoom(), which the request reader calls before each request.
//
// Guarantees on one stream: a watcher's created answer precedes its events; answers to
// create requests come in request order; nothing for a watcher follows its cancel answer;
// an answer to a progress request (watch id -1) at revision R follows every event at or
// below R of every watcher on the stream: it waits while one catches up, as etcd does
// since 3.5.8 (3.4 could answer ahead of events still queued).
//
// Ownership and threads: the store must outlive the hub. Every public method may be called
// from any thread; Notify() must be called in revision order (the apply order). The hub
// owns one thread (catch-up), joined by Stop() or the destructor. Streams are shared with
// their consumer; CloseStream() (or Stop()) drops the stream's watchers and closes it.
// REQUIRES: consumers are done with their streams (Next() returned) before the hub is
// destroyed, since a stream wakes the hub when it has room again.
#ifndef KVSTORE_SERVER_WATCH_HUB_H_
#define KVSTORE_SERVER_WATCH_HUB_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "kvstore/storage/mvcc_store.h"

namespace kvstore::server {

// etcd's mvcc errors a create request can meet; they travel as cancel_reason.
inline constexpr char kWatcherRangeEmpty[] = "mvcc: watcher range is empty";
inline constexpr char kWatcherDuplicateId[] =
    "mvcc: duplicate watch ID provided on the WatchStream";

// The watch id of answers that belong to no watcher: failed creates and progress requests.
inline constexpr int64_t kNoWatchId = -1;

// One response of a watch stream, in plain C++ (the service turns it into a WatchResponse).
struct WatchUpdate {
  int64_t watch_id = 0;
  // The header's revision, as etcd fills it (0 on a compaction cancel).
  int64_t revision = 0;
  bool created = false;
  bool canceled = false;
  int64_t compact_revision = 0;
  std::string cancel_reason;
  // Shared between the watchers that receive the same change.
  std::vector<std::shared_ptr<const mvcc::Event>> events;
  // Send each event's prev_kv (the watcher asked for it).
  bool prev_kv = false;
  // The watcher allows this update to be split (etcd's `fragment`).
  bool fragment = false;
};

// What a create request asks for, as etcd's WatchCreateRequest.
struct WatchSpec {
  // 0: the hub picks the lowest id unused on the stream.
  int64_t watch_id = 0;
  // An empty key means "\0"; range_end as etcd's: empty = the key only, "\0" = every key
  // >= key, otherwise [key, range_end).
  std::string key;
  std::string range_end;
  // First revision to deliver; 0 = from the next revision on.
  int64_t start_revision = 0;
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
  bool progress_notify = false;
  bool fragment = false;
};

struct WatchHubOptions {
  // Updates one watcher may have queued on its stream before it falls behind.
  int max_pending_per_watcher = 128;
  // Event bytes one stream may have queued; an update into an empty queue always fits.
  int64_t max_pending_bytes_per_stream = 64 << 20;
  // Answers to requests queued per stream before the request reader waits.
  int max_pending_control = 16;
  // A catch-up read stops after this many events (at the end of a revision) ...
  int64_t catch_up_events = 1000;
  // ... and scans at most this many revisions.
  int64_t catch_up_revisions = 10000;
  // How often watchers whose streams are full are retried, absent any wakeup.
  absl::Duration retry_interval = absl::Milliseconds(50);
};

class WatchHub;

// The outgoing queue of one client stream. See the file comment.
//
// Threads: Next() and WaitForControlRoom() are for the stream's consumer and request
// reader (one thread each); the rest is the hub's.
class WatchStream {
 public:
  WatchStream(const WatchStream&) = delete;
  WatchStream& operator=(const WatchStream&) = delete;

  // The next update, waiting until `deadline`; nullopt on timeout or once closed.
  std::optional<WatchUpdate> Next(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until an answer to one more request fits; false once closed.
  bool WaitForControlRoom() ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until the stream is closed or `deadline`; true if closed.
  bool WaitClosed(absl::Time deadline) ABSL_LOCKS_EXCLUDED(mu_);
  bool closed() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class WatchHub;
  struct Entry {
    WatchUpdate update;
    // Counted against the watcher's and stream's bounds (events, progress, compaction);
    // otherwise an answer to a request.
    bool bounded = false;
    int64_t bytes = 0;
  };

  WatchStream(const WatchHubOptions& options, std::function<void()> on_room)
      : options_(options), on_room_(std::move(on_room)) {}

  // Queues a bounded update of `watch_id` unless that watcher or the stream is full.
  // A closed stream swallows it.
  bool TryPush(WatchUpdate update) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether TryPush for `watch_id` would likely succeed (if not, the next pop wakes the hub).
  bool HasRoom(int64_t watch_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues an answer to a request; never refused.
  void PushControl(WatchUpdate update) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops every queued bounded update of `watch_id`.
  void Purge(int64_t watch_id) ABSL_LOCKS_EXCLUDED(mu_);
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  bool HasEntryOrClosed() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool HasControlRoomOrClosed() const ABSL_SHARED_LOCKS_REQUIRED(mu_);
  bool IsClosed() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return closed_; }

  const WatchHubOptions options_;
  // Tells the hub that a full stream has room again.
  const std::function<void()> on_room_;

  mutable absl::Mutex mu_;
  std::deque<Entry> queue_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<int64_t, int> pending_ ABSL_GUARDED_BY(mu_);
  int64_t pending_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  int pending_control_ ABSL_GUARDED_BY(mu_) = 0;
  // A TryPush was refused since the last pop.
  bool refused_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

class WatchHub {
 public:
  // Starts at the store's current revision. REQUIRES: nothing is applied to the store
  // between this call and the first Notify() (build the hub before the server starts).
  explicit WatchHub(const mvcc::MvccStore* store, WatchHubOptions options = {});
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;
  ~WatchHub();

  // Joins the catch-up thread and closes every stream. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

  // A write transaction committed `events` (its WriteTxn::Changes()) at `revision`. Watchers
  // get etcd's prev_kv: the key before `revision`, none with an event that creates the key.
  // Without `prev_values` the events' prev_kvs lack their values (mvcc::GroupOptions): a
  // watcher that wants prev_kv and matches one of them catches up from the history instead.
  // Does not block on clients.
  // Revisions that never came through here (a gap; say, a snapshot was installed) make the
  // synced watchers that might have wanted them catch up from the history; `events` may be
  // empty, to move the hub's revision only.
  void Notify(const std::vector<mvcc::Event>& events, int64_t revision, bool prev_values = true)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Whether some watcher wants prev_kv, so that writes should read the values they replace
  // (without them, Notify sends such watchers the long way, through the history).
  bool WantsPrevValues() const { return prev_kv_watchers_.load(std::memory_order_relaxed) > 0; }

  std::shared_ptr<WatchStream> OpenStream() ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the stream's watchers and closes it. Idempotent.
  void CloseStream(WatchStream* stream) ABSL_LOCKS_EXCLUDED(mu_);

  // Adds a watcher to `stream` and queues the answer: created (header revision: the hub's
  // revision), or created + canceled with etcd's reason and watch id -1. Returns the id,
  // or kNoWatchId.
  int64_t Watch(WatchStream* stream, const WatchSpec& spec) ABSL_LOCKS_EXCLUDED(mu_);
  // Removes the watcher and queues the canceled answer; an unknown id gets no answer (as
  // in etcd). Returns whether the id was known.
  bool Cancel(WatchStream* stream, int64_t watch_id) ABSL_LOCKS_EXCLUDED(mu_);
  // Queues a progress answer (watch id -1, the hub's revision) once no watcher of the
  // stream is behind. Requests made while one is pending share its answer.
  void RequestProgress(WatchStream* stream) ABSL_LOCKS_EXCLUDED(mu_);
  // The periodic progress_notify: each synced watcher of `stream` that asked for it and got
  // no events since the last call gets an empty update at the hub's revision.
  void NotifyProgress(WatchStream* stream) ABSL_LOCKS_EXCLUDED(mu_);

  // Every event at or below this revision has been handed to the synced watchers.
  int64_t revision() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t watcher_count() const ABSL_LOCKS_EXCLUDED(mu_);
  size_t unsynced_count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct StreamState;
  struct Watcher;
  using WatcherSet = std::set<Watcher*>;

  // Puts a synced watcher into the index Notify() matches against, or takes it out.
  void Index(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unindex(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MakeUnsynced(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MakeSynced(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes a watcher out of whichever group holds it and forgets it.
  void Remove(Watcher* w) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // One watcher of the stream is no longer behind: answer a pending progress request if
  // none is.
  void LeftUnsynced(StreamState* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  StreamState* Find(WatchStream* stream) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void CatchUpLoop() ABSL_LOCKS_EXCLUDED(mu_);
  // One bounded step for one unsynced watcher; true if it got anywhere.
  bool CatchUp(const std::shared_ptr<Watcher>& w) ABSL_LOCKS_EXCLUDED(mu_);
  void Wake() ABSL_LOCKS_EXCLUDED(mu_);

  const mvcc::MvccStore* const store_;
  const WatchHubOptions options_;

  mutable absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_);
  std::map<WatchStream*, std::unique_ptr<StreamState>> streams_ ABSL_GUARDED_BY(mu_);
  // Synced watchers: of one key, by key; of a range, all together.
  std::unordered_map<std::string, WatcherSet> key_watchers_ ABSL_GUARDED_BY(mu_);
  WatcherSet range_watchers_ ABSL_GUARDED_BY(mu_);
  size_t synced_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Unsynced watchers, in the order they fell behind.
  std::map<uint64_t, std::shared_ptr<Watcher>> unsynced_ ABSL_GUARDED_BY(mu_);
  uint64_t next_unsynced_seq_ ABSL_GUARDED_BY(mu_) = 0;
  size_t watcher_count_ ABSL_GUARDED_BY(mu_) = 0;
  // Watchers that want prev_kv; changed under mu_, read without it.
  std::atomic<int> prev_kv_watchers_{0};
  // The catch-up thread has something new to try.
  bool wake_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;

  std::thread catch_up_thread_;
};

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_WATCH_HUB_H_
