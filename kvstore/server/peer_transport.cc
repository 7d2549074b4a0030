#include "kvstore/server/peer_transport.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <filesystem>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kvstore/server/peer_codec.h"
#include "kvstore/server/snapshot_stream.h"
#include "spdlog/spdlog.h"

namespace kvstore::server {

namespace {

std::shared_ptr<grpc::Channel> Dial(const std::string& address,
                                    const PeerTransport::Options& options) {
  grpc::ChannelArguments args;
  const int max_backoff_ms =
      static_cast<int>(absl::ToInt64Milliseconds(options.max_reconnect_backoff));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, std::min(100, max_backoff_ms));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_backoff_ms);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

// One peer: its queue, the stream that carries the queue to it, and the thread that
// streams snapshots to it.
//
// The stream is a gRPC callback stream, so that no thread waits on it: whoever queues a
// message while no write is in flight (normally the Raft driver) starts the write itself,
// and each finished write starts the next with whatever queued meanwhile. Exactly one
// party at a time owns the right to write (writing_); it alone starts writes, and it
// alone gives the stream up when a write fails or the peer is stopping.
class PeerTransport::Peer {
 public:
  Peer(uint64_t id, const std::string& address, const Options& options, MessageSink* sink)
      : id_(id),
        address_(address),
        options_(options),
        sink_(sink),
        stub_(kvstore::raftpb::RaftPeer::NewStub(Dial(address, options))) {
    snapshot_thread_ = std::thread([this] { RunSnapshots(); });
  }

  ~Peer() {
    Stream* idle = nullptr;     // the current stream, if this claimed it to give it up
    Stream* writing = nullptr;  // the current stream, with a write in flight
    {
      absl::MutexLock l(&mu_);
      stopping_ = true;
      queue_.clear();
      if (snapshot_ctx_ != nullptr) snapshot_ctx_->TryCancel();
      if (stream_ != nullptr && !writing_) {
        writing_ = true;
        idle = std::exchange(stream_, nullptr);
      } else {
        writing = stream_;  // its writer gives it up once the write ends
      }
    }
    // Outside the lock: gRPC may run the stream's reactions on this thread. Streams are
    // deleted only here, after they are done, so the pointers are still good.
    if (writing != nullptr) writing->context.TryCancel();  // unblocks a write to a dead peer
    if (idle != nullptr) {
      idle->context.TryCancel();
      idle->RemoveHold();
    }
    snapshot_thread_.join();
    std::optional<PendingSnapshot> left;
    {
      absl::MutexLock l(&mu_);
      mu_.Await(absl::Condition(
          +[](Peer* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) { return p->streams_live_ == 0; },
          this));
      left.swap(snapshot_);
    }
    if (left) DropSnapshot(std::move(*left));
  }

  void EnqueueSnapshot(raft::Message m, std::string dir) {
    std::optional<PendingSnapshot> dropped;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) {
        dropped = PendingSnapshot{std::move(m), std::move(dir)};
      } else {
        if (snapshot_) dropped = std::move(snapshot_);
        snapshot_ = PendingSnapshot{std::move(m), std::move(dir)};
      }
    }
    if (dropped) DropSnapshot(std::move(*dropped));
  }

  // The last write succeeded, and no longer than `within` ago.
  bool reachable(absl::Duration within) const {
    const int64_t at = last_written_ns_.load(std::memory_order_relaxed);
    return at != 0 && absl::GetCurrentTimeNanos() - at <= absl::ToInt64Nanoseconds(within);
  }

  // Queues `messages` and, unless a write is in flight, writes them now.
  void Enqueue(std::vector<raft::Message> messages) {
    std::vector<raft::Message> overflow;
    Stream* fresh = nullptr;
    Stream* s = nullptr;
    {
      absl::MutexLock l(&mu_);
      if (stopping_) return;
      for (raft::Message& m : messages) {
        if (queue_.size() >= options_.max_queued) {
          overflow.push_back(std::move(m));
        } else {
          queue_.push_back(std::move(m));
        }
      }
      if (!writing_ && !queue_.empty()) {
        if (stream_ == nullptr && absl::Now() >= retry_at_) stream_ = fresh = NewStream();
        if (stream_ != nullptr) {
          writing_ = true;
          s = stream_;
          TakeBatch(s);
        }
      }
    }
    if (fresh != nullptr) fresh->StartCall();
    if (s != nullptr) s->Write();
    if (!overflow.empty()) Dropped(overflow);
  }

 private:
  // One RaftPeer.Send call. The peer holds it open (a hold) until it gives it up.
  class Stream final : public grpc::ClientWriteReactor<kvstore::raftpb::MessageBatch> {
   public:
    explicit Stream(Peer* peer) : peer_(peer) {}
    // Writes `batch` (the writer's, filled by TakeBatch).
    void Write() { StartWrite(&batch); }
    void OnWriteDone(bool ok) override { peer_->WriteDone(this, ok); }
    void OnDone(const grpc::Status& s) override { peer_->StreamDone(this, s); }

    grpc::ClientContext context;
    kvstore::raftpb::SendResponse response;
    // The batch being written, and its messages (the writer's).
    kvstore::raftpb::MessageBatch batch;
    std::vector<raft::Message> sent;
    bool done = false;  // OnDone ran (under the peer's mu_)

   private:
    Peer* const peer_;
  };

  struct PendingSnapshot {
    raft::Message message;
    std::string dir;
  };

  bool HasSnapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || snapshot_.has_value();
  }

  Stream* NewStream() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    // Streams that ended are deleted here and in the destructor: never by themselves,
    // so that a pointer to one stays good while anyone may still use it.
    streams_.erase(std::remove_if(streams_.begin(), streams_.end(),
                                  [](const std::unique_ptr<Stream>& s) { return s->done; }),
                   streams_.end());
    Stream* s = streams_.emplace_back(std::make_unique<Stream>(this)).get();
    ++streams_live_;
    stub_->async()->Send(&s->context, &s->response, s);
    s->AddHold();
    return s;
  }

  // Moves up to max_batch_bytes of the queue into the writer's batch.
  void TakeBatch(Stream* s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    s->sent.clear();
    s->batch.Clear();
    s->batch.set_cluster_id(options_.cluster_id);
    size_t bytes = 0;
    while (!queue_.empty() && (s->sent.empty() || bytes < options_.max_batch_bytes)) {
      bytes += queue_.front().snapshot.data.size() + 64;
      for (const raft::Entry& e : queue_.front().entries) bytes += e.data.size() + 24;
      s->sent.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    for (const raft::Message& m : s->sent) ToProto(m, s->batch.add_messages());
  }

  void WriteDone(Stream* s, bool ok) {
    std::vector<raft::Message> sent = std::move(s->sent);
    s->sent.clear();
    bool give_up = false;
    bool next = false;
    {
      absl::MutexLock l(&mu_);
      if (ok) {
        last_written_ns_.store(absl::GetCurrentTimeNanos(), std::memory_order_relaxed);
        if (logged_down_) {
          spdlog::info("peer {:x} at {} reachable again", id_, address_);
          logged_down_ = false;
        }
      } else {
        // The stream broke (peer down, restarting, or refusing us): a new one, later.
        last_written_ns_.store(0, std::memory_order_relaxed);
        retry_at_ = absl::Now() + options_.retry;
      }
      if (!ok || stopping_) {
        give_up = true;
        writing_ = false;
        stream_ = nullptr;
      } else if (queue_.empty()) {
        writing_ = false;
      } else {
        next = true;
        TakeBatch(s);
      }
    }
    if (next) s->Write();
    if (give_up) s->RemoveHold();
    if (ok) {
      for (const raft::Message& m : sent) {
        if (m.type == raft::MessageType::kSnap) sink_->ReportSnapshot(id_, true);
      }
    } else {
      Dropped(sent);
    }
  }

  void StreamDone(Stream* s, const grpc::Status& st) {
    absl::MutexLock l(&mu_);
    if (!st.ok() && !stopping_ && !logged_down_) {
      spdlog::warn("peer {:x} at {} unreachable: {}", id_, address_, st.error_message());
      logged_down_ = true;
    }
    s->done = true;
    --streams_live_;
  }

  void DropSnapshot(PendingSnapshot p) {
    std::error_code ec;
    std::filesystem::remove_all(p.dir, ec);
    sink_->ReportSnapshot(id_, false);
  }

  // Streams one snapshot at a time, reporting each outcome.
  void RunSnapshots() {
    for (;;) {
      PendingSnapshot p;
      auto ctx = std::make_unique<grpc::ClientContext>();
      {
        absl::MutexLock l(&mu_);
        mu_.Await(absl::Condition(this, &Peer::HasSnapshot));
        if (stopping_) return;
        p = std::move(*snapshot_);
        snapshot_.reset();
        snapshot_ctx_ = ctx.get();
      }
      const absl::Time start = absl::Now();
      kvstore::raftpb::SnapshotResponse resp;
      std::unique_ptr<grpc::ClientWriter<kvstore::raftpb::SnapshotChunk>> writer =
          stub_->SendSnapshot(ctx.get(), &resp);
      absl::StatusOr<StreamStats> sent = WriteSnapshotStream(
          p.dir, options_.cluster_id, p.message, options_.snapshot_chunk_bytes,
          [&](const kvstore::raftpb::SnapshotChunk& c) { return writer->Write(c); });
      if (sent.ok()) writer->WritesDone();
      const grpc::Status st = writer->Finish();
      {
        absl::MutexLock l(&mu_);
        snapshot_ctx_ = nullptr;
      }
      std::error_code ec;
      std::filesystem::remove_all(p.dir, ec);
      const bool ok = sent.ok() && st.ok();
      if (ok) {
        spdlog::info("sent the snapshot at index {} to {:x}: {} files, {} bytes in {}",
                     p.message.snapshot.meta.index, id_, sent->files, sent->bytes,
                     absl::FormatDuration(absl::Now() - start));
      } else {
        spdlog::warn("sending the snapshot at index {} to {:x} failed: {} {}",
                     p.message.snapshot.meta.index, id_,
                     sent.ok() ? "" : sent.status().ToString(), st.error_message());
      }
      sink_->ReportSnapshot(id_, ok);
    }
  }

  // Raft retransmits what is lost; it only needs to hear that the peer is not keeping up.
  void Dropped(const std::vector<raft::Message>& lost) {
    bool reported = false;
    for (const raft::Message& m : lost) {
      if (m.type == raft::MessageType::kSnap) sink_->ReportSnapshot(id_, false);
      if (!reported) {
        sink_->ReportUnreachable(id_);
        reported = true;
      }
    }
  }

  const uint64_t id_;
  const std::string address_;
  const Options& options_;
  MessageSink* const sink_;
  std::unique_ptr<kvstore::raftpb::RaftPeer::Stub> stub_;
  // When a batch was last written to the peer (Unix ns); 0 once a write failed after it.
  std::atomic<int64_t> last_written_ns_{0};

  absl::Mutex mu_;
  std::deque<raft::Message> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The stream in use (null: none yet, or the last one broke), and whether someone owns
  // the right to write on it.
  Stream* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  // No new stream before this, after one broke.
  absl::Time retry_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  bool logged_down_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Stream>> streams_ ABSL_GUARDED_BY(mu_);
  int streams_live_ ABSL_GUARDED_BY(mu_) = 0;  // streams whose OnDone has not run
  std::optional<PendingSnapshot> snapshot_ ABSL_GUARDED_BY(mu_);
  grpc::ClientContext* snapshot_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::thread snapshot_thread_;
};

PeerTransport::PeerTransport(const Options& options, MessageSink* sink)
    : options_(options),
      sink_(sink),
      faults_(options.test_faults_file.empty()
                  ? nullptr
                  : std::make_unique<PeerFaults>(options.test_faults_file)),
      service_(options.cluster_id, options.snapshot_dir, sink, faults_.get()) {}

PeerTransport::~PeerTransport() { Stop(); }

void PeerTransport::AddPeer(uint64_t id, const std::string& address) {
  auto peer = std::make_shared<Peer>(id, address, options_, sink_);
  absl::MutexLock l(&mu_);
  peers_[id] = std::move(peer);
}

void PeerTransport::RemovePeer(uint64_t id) {
  std::shared_ptr<Peer> gone;
  {
    absl::MutexLock l(&mu_);
    auto it = peers_.find(id);
    if (it == peers_.end()) return;
    gone = std::move(it->second);
    peers_.erase(it);
  }
  // Destroyed outside the lock (or by the last Send using it): it joins its thread.
}

void PeerTransport::Stop() {
  std::map<uint64_t, std::shared_ptr<Peer>> all;
  {
    absl::MutexLock l(&mu_);
    all.swap(peers_);
  }
}

void PeerTransport::SendSnapshot(raft::Message m, std::string checkpoint_dir) {
  {
    absl::MutexLock l(&mu_);
    auto it = peers_.find(m.to);
    const bool blocked = faults_ != nullptr && faults_->Blocked(m.to);  // a test's partition
    if (it != peers_.end() && !blocked) {
      it->second->EnqueueSnapshot(std::move(m), std::move(checkpoint_dir));
      return;
    }
  }
  std::error_code ec;
  std::filesystem::remove_all(checkpoint_dir, ec);
  sink_->ReportSnapshot(m.to, false);
}

std::vector<uint64_t> PeerTransport::ReachablePeers(absl::Duration within) {
  std::vector<uint64_t> ids;
  absl::MutexLock l(&mu_);
  for (const auto& [id, peer] : peers_) {
    if (peer->reachable(within)) ids.push_back(id);
  }
  return ids;
}

void PeerTransport::Send(std::vector<raft::Message> messages) {
  // Grouped by peer, and handed over outside the lock: a peer may start writing at once.
  std::map<uint64_t, std::pair<std::shared_ptr<Peer>, std::vector<raft::Message>>> by_peer;
  {
    absl::MutexLock l(&mu_);
    for (raft::Message& m : messages) {
      auto it = peers_.find(m.to);
      if (it == peers_.end()) continue;  // not (or no longer) a peer we know
      if (faults_ != nullptr && faults_->Blocked(m.to)) {
        // A test's partition: lost on the way. The core must still hear a snapshot failed.
        if (m.type == raft::MessageType::kSnap) sink_->ReportSnapshot(m.to, false);
        continue;
      }
      auto& [peer, batch] = by_peer[m.to];
      peer = it->second;
      batch.push_back(std::move(m));
    }
  }
  for (auto& [id, to] : by_peer) to.first->Enqueue(std::move(to.second));
}

// One RaftPeer.Send call from a peer: each batch read is checked and handed to the sink.
class PeerTransport::Receiver final
    : public grpc::ServerReadReactor<kvstore::raftpb::MessageBatch> {
 public:
  explicit Receiver(const Service* service) : service_(service) { StartRead(&batch_); }

  void OnReadDone(bool ok) override {
    if (!ok) {
      // The peer closed the stream, or it broke: when its process dies, the kernel closes
      // its sockets, and this is the first sign of it.
      if (from_ != raft::kNone) service_->PeerDown(from_);
      return Finish(grpc::Status::OK);
    }
    if (grpc::Status s = service_->Deliver(batch_); !s.ok()) return Finish(s);
    if (batch_.messages_size() > 0) from_ = batch_.messages(0).from();
    StartRead(&batch_);
  }
  void OnDone() override { delete this; }

 private:
  const Service* const service_;
  kvstore::raftpb::MessageBatch batch_;
  uint64_t from_ = raft::kNone;  // who writes to this stream, once known
};

grpc::ServerReadReactor<kvstore::raftpb::MessageBatch>* PeerTransport::Service::Send(
    grpc::CallbackServerContext*, kvstore::raftpb::SendResponse*) {
  return new Receiver(this);
}

void PeerTransport::Service::PeerDown(uint64_t id) const {
  if (faults_ != nullptr && faults_->Blocked(id)) return;  // a test's partition
  sink_->ReportPeerDown(id);
}

grpc::Status PeerTransport::Service::Deliver(const kvstore::raftpb::MessageBatch& batch) const {
  if (batch.cluster_id() != cluster_id_) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "raft: message from a member of another cluster");
  }
  for (const kvstore::raftpb::Message& pm : batch.messages()) {
    absl::StatusOr<raft::Message> m = FromProto(pm);
    if (!m.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(m.status().message()));
    }
    if (faults_ != nullptr && faults_->Blocked(m->from)) continue;  // a test's partition
    // A snapshot comes with its state, over SendSnapshot, or not at all.
    if (m->type == raft::MessageType::kSnap) continue;
    sink_->Step(std::move(*m));
  }
  return grpc::Status::OK;
}

grpc::Status PeerTransport::Service::SendSnapshot(
    grpc::ServerContext*, grpc::ServerReader<kvstore::raftpb::SnapshotChunk>* reader,
    kvstore::raftpb::SnapshotResponse*) {
  if (snapshot_dir_.empty()) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "raft: snapshots not accepted");
  }
  const std::string tmp = (std::filesystem::path(snapshot_dir_) /
                           absl::StrCat("incoming-", next_stream_.fetch_add(1)))
                              .string();
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  auto fail = [&](const absl::Status& s) {
    std::error_code ignored;
    std::filesystem::remove_all(tmp, ignored);
    spdlog::warn("receiving a snapshot failed: {}", s.ToString());
    return grpc::Status(absl::IsDataLoss(s) ? grpc::StatusCode::DATA_LOSS
                                            : grpc::StatusCode::INVALID_ARGUMENT,
                        std::string(s.message()));
  };
  SnapshotReceiver receiver(tmp, cluster_id_);
  kvstore::raftpb::SnapshotChunk chunk;
  while (reader->Read(&chunk)) {
    if (absl::Status s = receiver.Add(chunk); !s.ok()) return fail(s);
  }
  absl::StatusOr<raft::Message> m = receiver.Finish();
  if (!m.ok()) return fail(m.status());
  if (faults_ != nullptr && faults_->Blocked(m->from)) {  // a test's partition
    return fail(absl::UnavailableError("raft: snapshot dropped by --test-peer-faults"));
  }
  const std::string path = ReceivedSnapshotPath(snapshot_dir_, m->snapshot.meta);
  std::filesystem::remove_all(path, ec);
  std::filesystem::rename(tmp, path, ec);
  if (ec) return fail(absl::InternalError(absl::StrCat("cannot rename ", tmp, ": ", ec.message())));
  spdlog::info("received the snapshot at index {} from {:x}", m->snapshot.meta.index, m->from);
  sink_->Step(std::move(*m));
  return grpc::Status::OK;
}

}  // namespace kvstore::server
