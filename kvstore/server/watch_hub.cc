#include "kvstore/server/watch_hub.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "spdlog/spdlog.h"

namespace kvstore::server {
namespace {

// Rough memory held by an update: what bounds a stream's queue.
int64_t ApproximateBytes(const WatchUpdate& u) {
  int64_t bytes = 64 + static_cast<int64_t>(u.cancel_reason.size());
  for (const std::shared_ptr<const mvcc::Event>& e : u.events) {
    bytes += 48 + static_cast<int64_t>(e->kv.key.size() + e->kv.value.size());
    if (u.prev_kv && e->prev_kv) {
      bytes += static_cast<int64_t>(e->prev_kv->key.size() + e->prev_kv->value.size());
    }
  }
  return bytes;
}

// A change of one revision as etcd's watch reports it. A transaction's changes carry the
// version each one replaced (WriteTxn::Changes); etcd's watch sends instead the key as it was
// before the revision (it reads prev_kv at mod_revision - 1), and nothing with an event that
// creates the key. The two differ only for a key changed twice in one revision, which etcd
// 3.4 allows: a txn may delete a key from-key and put it too. `before` is the key's state
// before the revision.
mvcc::Event AsWatched(const mvcc::Event& change, const std::optional<mvcc::KeyValue>& before) {
  mvcc::Event e = change;
  const bool creates =
      e.type == mvcc::Event::Type::kPut && e.kv.create_revision == e.kv.mod_revision;
  e.prev_kv = creates ? std::nullopt : before;
  return e;
}

}  // namespace

// ---------------------------------------------------------------------------
// WatchStream

bool WatchStream::HasEntryOrClosed() const { return closed_ || !queue_.empty(); }

bool WatchStream::HasControlRoomOrClosed() const {
  return closed_ || pending_control_ < options_.max_pending_control;
}

std::optional<WatchUpdate> WatchStream::Next(absl::Time deadline) {
  bool wake_hub = false;
  std::optional<WatchUpdate> out;
  {
    absl::MutexLock l(&mu_);
    mu_.AwaitWithDeadline(absl::Condition(this, &WatchStream::HasEntryOrClosed), deadline);
    if (closed_ || queue_.empty()) return std::nullopt;
    Entry e = std::move(queue_.front());
    queue_.pop_front();
    if (e.bounded) {
      auto it = pending_.find(e.update.watch_id);
      if (it != pending_.end() && --it->second <= 0) pending_.erase(it);
      pending_bytes_ -= e.bytes;
      wake_hub = refused_;
      refused_ = false;
    } else {
      --pending_control_;
    }
    out = std::move(e.update);
  }
  if (wake_hub && on_room_) on_room_();
  return out;
}

bool WatchStream::WaitForControlRoom() {
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(this, &WatchStream::HasControlRoomOrClosed));
  return !closed_;
}

bool WatchStream::WaitClosed(absl::Time deadline) {
  absl::MutexLock l(&mu_);
  return mu_.AwaitWithDeadline(absl::Condition(this, &WatchStream::IsClosed), deadline);
}

bool WatchStream::closed() const {
  absl::MutexLock l(&mu_);
  return closed_;
}

bool WatchStream::TryPush(WatchUpdate update) {
  const int64_t bytes = ApproximateBytes(update);
  absl::MutexLock l(&mu_);
  if (closed_) return true;
  auto it = pending_.find(update.watch_id);
  const int pending = it == pending_.end() ? 0 : it->second;
  if (pending >= options_.max_pending_per_watcher ||
      (pending_bytes_ > 0 && pending_bytes_ + bytes > options_.max_pending_bytes_per_stream)) {
    refused_ = true;
    return false;
  }
  ++pending_[update.watch_id];
  pending_bytes_ += bytes;
  queue_.push_back(Entry{.update = std::move(update), .bounded = true, .bytes = bytes});
  return true;
}

bool WatchStream::HasRoom(int64_t watch_id) {
  absl::MutexLock l(&mu_);
  if (closed_) return true;
  auto it = pending_.find(watch_id);
  const int pending = it == pending_.end() ? 0 : it->second;
  if (pending < options_.max_pending_per_watcher &&
      pending_bytes_ < options_.max_pending_bytes_per_stream) {
    return true;
  }
  refused_ = true;
  return false;
}

void WatchStream::PushControl(WatchUpdate update) {
  absl::MutexLock l(&mu_);
  if (closed_) return;
  ++pending_control_;
  queue_.push_back(Entry{.update = std::move(update), .bounded = false});
}

void WatchStream::Purge(int64_t watch_id) {
  absl::MutexLock l(&mu_);
  std::erase_if(queue_, [this, watch_id](const Entry& e) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!e.bounded || e.update.watch_id != watch_id) return false;
    pending_bytes_ -= e.bytes;
    return true;
  });
  pending_.erase(watch_id);
}

void WatchStream::Close() {
  absl::MutexLock l(&mu_);
  closed_ = true;
  queue_.clear();
  pending_.clear();
  pending_bytes_ = 0;
  pending_control_ = 0;
}

// ---------------------------------------------------------------------------
// WatchHub

// Every field is guarded by WatchHub::mu_, except the ones fixed at creation.
struct WatchHub::Watcher {
  enum class State { kNew, kSynced, kUnsynced, kCompacted };

  bool Contains(const std::string& k) const {
    if (range_end.empty()) return k == key;
    if (range_end == std::string(1, '\0')) return k >= key;
    return k >= key && k < range_end;
  }
  bool Wants(const mvcc::Event& e) const {
    return e.type == mvcc::Event::Type::kPut ? !no_put : !no_delete;
  }

  // Fixed at creation.
  int64_t id = 0;
  StreamState* stream = nullptr;  // valid until `removed`
  std::shared_ptr<WatchStream> queue;
  std::string key;
  std::string range_end;
  bool prev_kv = false;
  bool no_put = false;
  bool no_delete = false;
  bool progress_notify = false;
  bool fragment = false;

  State state = State::kNew;
  // The first revision this watcher has not seen yet.
  int64_t next_rev = 0;
  // Its key in WatchHub::unsynced_ while unsynced.
  uint64_t unsynced_seq = 0;
  // Got events since the last periodic progress notification.
  bool events_since_progress = false;
  bool removed = false;
};

// The hub's side of one stream. Guarded by WatchHub::mu_.
struct WatchHub::StreamState {
  std::shared_ptr<WatchStream> queue;
  // Every id in use, compacted watchers included (as etcd, until the client cancels them).
  std::map<int64_t, std::shared_ptr<Watcher>> watchers;
  int64_t next_auto_id = 0;
  int unsynced = 0;
  // A progress request waits for the unsynced watchers.
  bool progress_pending = false;
};

WatchHub::WatchHub(const mvcc::MvccStore* store, WatchHubOptions options)
    : store_(store), options_(options), revision_(store->CurrentRevision()) {
  catch_up_thread_ = std::thread([this] { CatchUpLoop(); });
}

WatchHub::~WatchHub() { Stop(); }

void WatchHub::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  if (catch_up_thread_.joinable()) catch_up_thread_.join();
  absl::MutexLock l(&mu_);
  for (auto& [ptr, s] : streams_) {
    for (auto& [id, w] : s->watchers) Remove(w.get());
    s->queue->Close();
  }
  streams_.clear();
}

int64_t WatchHub::revision() const {
  absl::MutexLock l(&mu_);
  return revision_;
}

size_t WatchHub::watcher_count() const {
  absl::MutexLock l(&mu_);
  return watcher_count_;
}

size_t WatchHub::unsynced_count() const {
  absl::MutexLock l(&mu_);
  return unsynced_.size();
}

std::shared_ptr<WatchStream> WatchHub::OpenStream() {
  std::shared_ptr<WatchStream> queue(new WatchStream(options_, [this] { Wake(); }));
  absl::MutexLock l(&mu_);
  if (stopping_) {
    queue->Close();
    return queue;
  }
  auto state = std::make_unique<StreamState>();
  state->queue = queue;
  streams_[queue.get()] = std::move(state);
  return queue;
}

void WatchHub::CloseStream(WatchStream* stream) {
  absl::MutexLock l(&mu_);
  auto it = streams_.find(stream);
  if (it != streams_.end()) {
    for (auto& [id, w] : it->second->watchers) Remove(w.get());
    streams_.erase(it);
  }
  stream->Close();
}

WatchHub::StreamState* WatchHub::Find(WatchStream* stream) {
  auto it = streams_.find(stream);
  return it == streams_.end() ? nullptr : it->second.get();
}

int64_t WatchHub::Watch(WatchStream* stream, const WatchSpec& spec) {
  absl::MutexLock l(&mu_);
  StreamState* s = Find(stream);
  if (s == nullptr || stopping_) return kNoWatchId;
  // As etcd: an empty key is "\0", the smallest key.
  const std::string key = spec.key.empty() ? std::string(1, '\0') : spec.key;
  const bool from_key = spec.range_end == std::string(1, '\0');
  auto refuse = [&](const char* reason) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    s->queue->PushControl(WatchUpdate{.watch_id = kNoWatchId,
                                      .revision = revision_,
                                      .created = true,
                                      .canceled = true,
                                      .cancel_reason = reason});
    return kNoWatchId;
  };
  if (!spec.range_end.empty() && !from_key && key >= spec.range_end) {
    return refuse(kWatcherRangeEmpty);
  }
  int64_t id = spec.watch_id;
  if (id == 0) {
    while (s->watchers.contains(s->next_auto_id)) ++s->next_auto_id;
    id = s->next_auto_id++;
  } else if (s->watchers.contains(id)) {
    return refuse(kWatcherDuplicateId);
  }
  s->queue->PushControl(WatchUpdate{.watch_id = id, .revision = revision_, .created = true});

  auto w = std::make_shared<Watcher>();
  w->id = id;
  w->stream = s;
  w->queue = s->queue;
  w->key = key;
  w->range_end = spec.range_end;
  w->prev_kv = spec.prev_kv;
  w->no_put = spec.no_put;
  w->no_delete = spec.no_delete;
  w->progress_notify = spec.progress_notify;
  w->fragment = spec.fragment;
  w->next_rev = spec.start_revision == 0 ? revision_ + 1 : spec.start_revision;
  s->watchers[id] = w;
  ++watcher_count_;
  if (w->prev_kv) prev_kv_watchers_.fetch_add(1, std::memory_order_relaxed);
  if (w->next_rev > revision_) {
    MakeSynced(w.get());
  } else {
    MakeUnsynced(w.get());
  }
  return id;
}

bool WatchHub::Cancel(WatchStream* stream, int64_t watch_id) {
  absl::MutexLock l(&mu_);
  StreamState* s = Find(stream);
  if (s == nullptr) return false;
  auto it = s->watchers.find(watch_id);
  if (it == s->watchers.end()) return false;
  std::shared_ptr<Watcher> w = std::move(it->second);
  s->watchers.erase(it);
  Remove(w.get());
  s->queue->Purge(watch_id);
  s->queue->PushControl(WatchUpdate{.watch_id = watch_id, .revision = revision_, .canceled = true});
  return true;
}

void WatchHub::RequestProgress(WatchStream* stream) {
  absl::MutexLock l(&mu_);
  StreamState* s = Find(stream);
  if (s == nullptr) return;
  if (s->unsynced > 0) {
    s->progress_pending = true;  // answered once the last one catches up
    return;
  }
  s->queue->PushControl(WatchUpdate{.watch_id = kNoWatchId, .revision = revision_});
}

void WatchHub::NotifyProgress(WatchStream* stream) {
  absl::MutexLock l(&mu_);
  StreamState* s = Find(stream);
  if (s == nullptr) return;
  for (auto& [id, w] : s->watchers) {
    if (!w->progress_notify) continue;
    if (w->state == Watcher::State::kSynced && !w->events_since_progress) {
      // A full queue means events are on their way: no progress needed (as etcd).
      s->queue->TryPush(WatchUpdate{.watch_id = id, .revision = revision_});
    }
    w->events_since_progress = false;
  }
}

void WatchHub::Index(Watcher* w) {
  if (w->range_end.empty()) {
    key_watchers_[w->key].insert(w);
  } else {
    range_watchers_.insert(w);
  }
  ++synced_count_;
}

void WatchHub::Unindex(Watcher* w) {
  if (w->range_end.empty()) {
    auto it = key_watchers_.find(w->key);
    if (it != key_watchers_.end()) {
      it->second.erase(w);
      if (it->second.empty()) key_watchers_.erase(it);
    }
  } else {
    range_watchers_.erase(w);
  }
  --synced_count_;
}

void WatchHub::MakeUnsynced(Watcher* w) {
  if (w->state == Watcher::State::kSynced) Unindex(w);
  w->state = Watcher::State::kUnsynced;
  w->unsynced_seq = next_unsynced_seq_++;
  unsynced_[w->unsynced_seq] = w->stream->watchers.at(w->id);
  ++w->stream->unsynced;
  wake_ = true;
}

void WatchHub::MakeSynced(Watcher* w) {
  const bool was_unsynced = w->state == Watcher::State::kUnsynced;
  if (was_unsynced) unsynced_.erase(w->unsynced_seq);
  w->state = Watcher::State::kSynced;
  Index(w);
  if (was_unsynced) LeftUnsynced(w->stream);
}

void WatchHub::Remove(Watcher* w) {
  switch (w->state) {
    case Watcher::State::kSynced:
      Unindex(w);
      break;
    case Watcher::State::kUnsynced:
      unsynced_.erase(w->unsynced_seq);
      LeftUnsynced(w->stream);
      break;
    case Watcher::State::kNew:
    case Watcher::State::kCompacted:
      break;
  }
  w->removed = true;
  --watcher_count_;
  if (w->prev_kv) prev_kv_watchers_.fetch_sub(1, std::memory_order_relaxed);
}

void WatchHub::LeftUnsynced(StreamState* s) {
  --s->unsynced;
  if (s->unsynced == 0 && s->progress_pending) {
    s->progress_pending = false;
    s->queue->PushControl(WatchUpdate{.watch_id = kNoWatchId, .revision = revision_});
  }
}

void WatchHub::Notify(const std::vector<mvcc::Event>& events, int64_t revision, bool prev_values) {
  absl::MutexLock l(&mu_);
  if (stopping_) return;
  if (revision <= revision_) {
    spdlog::warn("watch hub: revision {} notified again (at {}); ignored", revision, revision_);
    return;
  }
  if (revision > revision_ + 1) {
    // Revisions in between never came through here: whoever might have wanted them
    // catches up from the history.
    std::vector<Watcher*> behind;
    for (auto& [k, set] : key_watchers_) {
      for (Watcher* w : set) {
        if (w->next_rev < revision) behind.push_back(w);
      }
    }
    for (Watcher* w : range_watchers_) {
      if (w->next_rev < revision) behind.push_back(w);
    }
    for (Watcher* w : behind) MakeUnsynced(w);
  }
  revision_ = revision;
  if (synced_count_ == 0 || events.empty()) return;

  // Each key's first change in this revision: its prev_kv is the key before the revision.
  std::unordered_map<std::string_view, size_t> first_change;
  if (events.size() > 1) {
    for (size_t i = 0; i < events.size(); ++i) first_change.try_emplace(events[i].kv.key, i);
  }
  std::vector<std::shared_ptr<const mvcc::Event>> shared(events.size());
  std::map<Watcher*, std::vector<std::shared_ptr<const mvcc::Event>>> batches;
  // Watchers that want prev_kv values these events lack: they read them from the history.
  std::set<Watcher*> need_values;
  auto add = [&](Watcher* w, size_t i) {
    if (w->next_rev > revision || !w->Wants(events[i])) return;
    if (w->prev_kv && !prev_values) {
      need_values.insert(w);
      return;
    }
    if (shared[i] == nullptr) {
      const size_t first = events.size() > 1 ? first_change.at(events[i].kv.key) : i;
      shared[i] = std::make_shared<const mvcc::Event>(AsWatched(events[i], events[first].prev_kv));
    }
    batches[w].push_back(shared[i]);
  };
  for (size_t i = 0; i < events.size(); ++i) {
    const std::string& key = events[i].kv.key;
    if (auto it = key_watchers_.find(key); it != key_watchers_.end()) {
      for (Watcher* w : it->second) add(w, i);
    }
    for (Watcher* w : range_watchers_) {
      if (w->Contains(key)) add(w, i);
    }
  }
  for (Watcher* w : need_values) MakeUnsynced(w);
  for (auto& [w, evs] : batches) {
    WatchUpdate u{.watch_id = w->id,
                  .revision = revision,
                  .events = std::move(evs),
                  .prev_kv = w->prev_kv,
                  .fragment = w->fragment};
    if (w->queue->TryPush(std::move(u))) {
      w->next_rev = revision + 1;
      w->events_since_progress = true;
    } else {
      // Its next revision stays at or below `revision`: the catch-up thread resends this one.
      MakeUnsynced(w);
    }
  }
}

void WatchHub::Wake() {
  absl::MutexLock l(&mu_);
  wake_ = true;
}

void WatchHub::CatchUpLoop() {
  const size_t kWatchersPerPass = 512;
  bool progressed = false;
  for (;;) {
    std::vector<std::shared_ptr<Watcher>> batch;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_ || wake_; };
      if (!progressed) {
        if (unsynced_.empty()) {
          mu_.Await(absl::Condition(&ready));
        } else {
          mu_.AwaitWithTimeout(absl::Condition(&ready), options_.retry_interval);
        }
      }
      if (stopping_) return;
      wake_ = false;
      // Oldest first; a watcher still behind after its step goes to the back.
      for (auto& [seq, w] : unsynced_) {
        if (batch.size() >= kWatchersPerPass) break;
        batch.push_back(w);
      }
    }
    progressed = false;
    for (const std::shared_ptr<Watcher>& w : batch) {
      if (CatchUp(w)) progressed = true;
    }
  }
}

bool WatchHub::CatchUp(const std::shared_ptr<Watcher>& w) {
  auto compacted = [this, &w](int64_t compact_rev) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (!w->queue->TryPush(WatchUpdate{
            .watch_id = w->id, .revision = 0, .canceled = true, .compact_revision = compact_rev})) {
      return false;
    }
    unsynced_.erase(w->unsynced_seq);
    w->state = Watcher::State::kCompacted;
    LeftUnsynced(w->stream);
    return true;
  };
  auto still_behind = [this, &w]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    unsynced_.erase(w->unsynced_seq);
    w->unsynced_seq = next_unsynced_seq_++;
    unsynced_[w->unsynced_seq] = w;
  };

  int64_t start = 0;
  int64_t end = 0;
  int64_t as_of = 0;
  {
    absl::MutexLock l(&mu_);
    if (w->removed || w->state != Watcher::State::kUnsynced) return false;
    if (!w->queue->HasRoom(w->id)) {
      still_behind();  // let the others have their turn meanwhile
      return false;
    }
    start = w->next_rev;
    as_of = revision_;
    if (const int64_t compact_rev = store_->CompactedRevision(); start < compact_rev) {
      return compacted(compact_rev);
    }
    if (start > as_of) {
      MakeSynced(w.get());
      return true;
    }
    const int64_t first = std::max<int64_t>(start, 1);
    end = std::min(as_of + 1, first + options_.catch_up_revisions);
  }

  // The store's own view is never behind the hub's revision: Notify follows the commit.
  absl::StatusOr<mvcc::EventsResult> read =
      store_->Events(std::max<int64_t>(start, 1), end, w->key, w->range_end,
                     mvcc::EventsOptions{.limit = options_.catch_up_events, .prev_kv = w->prev_kv});

  absl::MutexLock l(&mu_);
  if (w->removed || w->state != Watcher::State::kUnsynced || w->next_rev != start) return false;
  if (!read.ok()) {
    if (mvcc::IsCompactedError(read.status())) return compacted(store_->CompactedRevision());
    spdlog::warn("watch {}: reading history from revision {} failed: {}", w->id, start,
                 read.status().ToString());
    still_behind();
    return false;
  }
  std::vector<std::shared_ptr<const mvcc::Event>> events;
  for (mvcc::Event& e : read->events) {
    if (w->Wants(e)) events.push_back(std::make_shared<const mvcc::Event>(std::move(e)));
  }
  if (!events.empty()) {
    WatchUpdate u{.watch_id = w->id,
                  .revision = as_of,
                  .events = std::move(events),
                  .prev_kv = w->prev_kv,
                  .fragment = w->fragment};
    if (!w->queue->TryPush(std::move(u))) return false;  // read again once there is room
    w->events_since_progress = true;
  }
  w->next_rev = read->next_revision;
  if (w->next_rev > revision_) {
    MakeSynced(w.get());
  } else {
    still_behind();
  }
  return true;
}

}  // namespace kvstore::server
