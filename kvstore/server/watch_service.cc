#include "kvstore/server/watch_service.h"

#include <google/protobuf/io/coded_stream.h>

#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "absl/time/clock.h"
#include "kvstore/server/range.h"
#include "kvstore/server/service_util.h"

namespace kvstore::server {
namespace {

using etcdserverpb::WatchRequest;
using etcdserverpb::WatchResponse;
using Stream = grpc::ServerReaderWriter<WatchResponse, WatchRequest>;

// etcd allows a watch response this much beyond --max-request-bytes before fragmenting.
constexpr int64_t kGrpcOverheadBytes = 512 * 1024;
// How often a half-closed call checks whether its client has gone.
constexpr absl::Duration kHalfClosedPoll = absl::Milliseconds(200);

WatchSpec SpecFrom(const etcdserverpb::WatchCreateRequest& r) {
  WatchSpec spec{.watch_id = r.watch_id(),
                 .key = r.key(),
                 .range_end = r.range_end(),
                 .start_revision = r.start_revision(),
                 .prev_kv = r.prev_kv(),
                 .progress_notify = r.progress_notify(),
                 .fragment = r.fragment()};
  for (int f : r.filters()) {
    if (f == etcdserverpb::WatchCreateRequest::NOPUT) spec.no_put = true;
    if (f == etcdserverpb::WatchCreateRequest::NODELETE) spec.no_delete = true;
  }
  return spec;
}

// Bytes an event adds to a WatchResponse: field 11's tag, the length, the message.
size_t EncodedEventSize(const mvccpb::Event& e) {
  const size_t n = e.ByteSizeLong();
  return 1 + google::protobuf::io::CodedOutputStream::VarintSize64(n) + n;
}

}  // namespace

std::vector<WatchResponse> FragmentWatchResponse(WatchResponse resp, int64_t limit) {
  std::vector<WatchResponse> out;
  if (static_cast<int64_t>(resp.ByteSizeLong()) < limit || resp.events_size() < 2) {
    out.push_back(std::move(resp));
    return out;
  }
  WatchResponse base = resp;
  base.clear_events();
  base.set_fragment(true);
  const size_t base_size = base.ByteSizeLong();
  const int n = resp.events_size();
  int next = 0;
  while (next < n) {
    WatchResponse& cur = out.emplace_back(base);
    size_t size = base_size;
    while (next < n) {
      const size_t grown = size + EncodedEventSize(resp.events(next));
      // Every fragment carries at least one event, however large.
      if (cur.events_size() > 0 && static_cast<int64_t>(grown) >= limit) break;
      cur.add_events()->Swap(resp.mutable_events(next));
      size = grown;
      ++next;
    }
    if (next == n) cur.set_fragment(false);
  }
  return out;
}

WatchService::WatchService(KvServer* server, WatchHub* hub, WatchServiceOptions options)
    : server_(server),
      hub_(hub),
      options_(options),
      fragment_bytes_(options.fragment_bytes > 0
                          ? options.fragment_bytes
                          : server->options().max_request_bytes + kGrpcOverheadBytes) {}

WatchService::~WatchService() { Stop(); }

void WatchService::Stop() {
  absl::MutexLock l(&mu_);
  stopping_ = true;
  for (grpc::ServerContext* ctx : active_) ctx->TryCancel();
  mu_.Await(absl::Condition(this, &WatchService::NoActiveStreams));
}

int WatchService::active_streams() const {
  absl::MutexLock l(&mu_);
  return static_cast<int>(active_.size());
}

grpc::Status WatchService::Watch(grpc::ServerContext* ctx, Stream* stream) {
  if (grpc::Status s = RefuseIfLearner(server_); !s.ok()) return s;
  {
    absl::MutexLock l(&mu_);
    if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcdserver: server stopped");
    active_.insert(ctx);
  }
  const std::shared_ptr<WatchStream> queue = hub_->OpenStream();
  std::thread sender([this, ctx, &queue, stream] {
    SendLoop(queue.get(), stream);
    // A failed write means the call is over; make sure the reader hears of it too.
    if (!queue->closed()) {
      hub_->CloseStream(queue.get());
      ctx->TryCancel();
    }
  });

  WatchRequest req;
  while (stream->Read(&req)) {
    if (!queue->WaitForControlRoom()) break;
    switch (req.request_union_case()) {
      case WatchRequest::kCreateRequest:
        hub_->Watch(queue.get(), SpecFrom(req.create_request()));
        break;
      case WatchRequest::kCancelRequest:
        hub_->Cancel(queue.get(), req.cancel_request().watch_id());
        break;
      case WatchRequest::kProgressRequest:
        hub_->RequestProgress(queue.get());
        break;
      case WatchRequest::REQUEST_UNION_NOT_SET:
        break;  // as etcd: ignored, the stream goes on
    }
  }
  // The client half-closed (its watches go on, as in etcd), went away, or Stop() cancelled
  // the call.
  while (!ctx->IsCancelled() && !queue->WaitClosed(absl::Now() + kHalfClosedPoll)) {
  }
  hub_->CloseStream(queue.get());
  sender.join();
  {
    absl::MutexLock l(&mu_);
    active_.erase(ctx);
  }
  return grpc::Status::CANCELLED;
}

void WatchService::SendLoop(WatchStream* queue, Stream* stream) {
  absl::Time next_tick = absl::Now() + options_.progress_interval;
  for (;;) {
    if (absl::Now() >= next_tick) {
      hub_->NotifyProgress(queue);
      next_tick = absl::Now() + options_.progress_interval;
    }
    std::optional<WatchUpdate> u = queue->Next(next_tick);
    if (!u) {
      if (queue->closed()) return;
      continue;
    }
    WatchResponse resp = ToResponse(*u);
    if (!u->fragment) {
      if (!stream->Write(resp)) return;
      continue;
    }
    for (const WatchResponse& part : FragmentWatchResponse(std::move(resp), fragment_bytes_)) {
      if (!stream->Write(part)) return;
    }
  }
}

WatchResponse WatchService::ToResponse(const WatchUpdate& u) const {
  WatchResponse r;
  server_->FillHeader(r.mutable_header());
  // etcd's header revision for this kind of response, 0 included (compaction).
  r.mutable_header()->set_revision(u.revision);
  r.set_watch_id(u.watch_id);
  r.set_created(u.created);
  r.set_canceled(u.canceled);
  r.set_compact_revision(u.compact_revision);
  r.set_cancel_reason(u.cancel_reason);
  for (const std::shared_ptr<const mvcc::Event>& e : u.events) {
    mvccpb::Event* out = r.add_events();
    out->set_type(e->type == mvcc::Event::Type::kPut ? mvccpb::Event::PUT : mvccpb::Event::DELETE);
    ToProto(e->kv, out->mutable_kv());
    if (u.prev_kv && e->prev_kv) ToProto(*e->prev_kv, out->mutable_prev_kv());
  }
  return r;
}

}  // namespace kvstore::server
