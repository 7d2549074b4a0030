#include "test/bench/watch_tracker.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace bench {

std::string WatchTracker::EncodeSendTime(int64_t nanos) {
  return absl::StrFormat("%016x", static_cast<uint64_t>(nanos));
}

bool WatchTracker::DecodeSendTime(std::string_view value, int64_t* nanos) {
  if (value.size() < kSendTimeBytes) return false;
  uint64_t v = 0;
  for (int i = 0; i < kSendTimeBytes; ++i) {
    const char c = value[i];
    int digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      digit = c - 'a' + 10;
    } else {
      return false;
    }
    v = (v << 4) | static_cast<uint64_t>(digit);
  }
  *nanos = static_cast<int64_t>(v);
  return true;
}

WatchTracker::WatchTracker(etcdserverpb::Watch::Stub* stub, grpc::CompletionQueue* cq,
                           std::string key, std::string range_end)
    : stub_(stub), cq_(cq), key_(std::move(key)), range_end_(std::move(range_end)) {}

WatchTracker::~WatchTracker() { Stop(); }

absl::Status WatchTracker::Start(absl::Duration timeout) {
  etcdserverpb::WatchCreateRequest* c = create_.mutable_create_request();
  c->set_key(key_);
  c->set_range_end(range_end_);
  {
    absl::MutexLock l(&mu_);
    opened_ = true;
    stream_ = stub_->PrepareAsyncWatch(&ctx_, cq_);
    stream_->StartCall(&started_);
    auto settled = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return created_ || !failure_.empty() || finished_flag_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&settled), timeout);
    if (created_ && failure_.empty()) return absl::OkStatus();
    if (!failure_.empty()) return absl::UnavailableError(failure_);
  }
  return absl::DeadlineExceededError(
      absl::StrCat("watch not created within ", absl::FormatDuration(timeout)));
}

void WatchTracker::OnStarted(bool ok) {
  absl::MutexLock l(&mu_);
  if (!ok) {
    read_done_ = true;  // the stream is over before it began; Finish tells why
    MaybeFinish();
    return;
  }
  write_pending_ = true;
  stream_->Write(create_, &written_);
  stream_->Read(&response_, &read_);
}

void WatchTracker::OnWritten(bool ok) {
  absl::MutexLock l(&mu_);
  write_pending_ = false;
  (void)ok;  // a failed write ends the stream, which the pending Read reports
  MaybeFinish();
}

void WatchTracker::OnRead(bool ok) {
  const int64_t now = NowNanos();
  absl::MutexLock l(&mu_);
  if (!ok) {
    read_done_ = true;
    MaybeFinish();
    return;
  }
  HandleResponse(response_, now);
  stream_->Read(&response_, &read_);
}

void WatchTracker::OnFinished(bool ok) {
  absl::MutexLock l(&mu_);
  finished_flag_ = true;
  if (!ok || (!finish_status_.ok() && !cancelled_by_us_)) {
    std::string why =
        absl::StrCat("watch stream ended: ", StatusCodeName(finish_status_.error_code()));
    if (!finish_status_.error_message().empty()) {
      absl::StrAppend(&why, ": ", finish_status_.error_message());
    }
    errors_.RecordError(why);
    if (failure_.empty()) failure_ = why;
  } else if (!cancelled_by_us_ && failure_.empty()) {
    failure_ = "watch stream ended by the server";
    errors_.RecordError(failure_);
  }
}

void WatchTracker::MaybeFinish() {
  if (read_done_ && !write_pending_ && !finish_called_) {
    finish_called_ = true;
    stream_->Finish(&finish_status_, &finished_);
  }
}

void WatchTracker::HandleResponse(const etcdserverpb::WatchResponse& r, int64_t now) {
  if (r.canceled()) {
    failure_ = absl::StrCat("watch canceled by the server: ", r.cancel_reason(),
                            r.compact_revision() != 0
                                ? absl::StrCat(" (compact revision ", r.compact_revision(), ")")
                                : "");
    errors_.RecordError(failure_);
    cancelled_by_us_ = true;  // the failure is recorded: the CANCELLED status is ours
    ctx_.TryCancel();         // the stream's Read then fails and Finish follows
    return;
  }
  if (r.created()) created_ = true;
  for (const mvccpb::Event& ev : r.events()) {
    if (ev.type() != mvccpb::Event::PUT) {
      errors_.RecordError("watch: unexpected DELETE event under the benchmark prefix");
      continue;
    }
    ++events_;
    int64_t sent;
    if (DecodeSendTime(ev.kv().value(), &sent)) {
      latency_.Record(now - sent);
    } else {
      errors_.RecordError("watch: event value carries no send time (another writer?)");
    }
    const int64_t rev = ev.kv().mod_revision();
    auto it = acks_waiting_.find(rev);
    if (it != acks_waiting_.end()) {
      ack_to_event_.Record(now - it->second);
      acks_waiting_.erase(it);
    } else {
      events_waiting_[rev] = now;
    }
  }
}

void WatchTracker::OnPutAcked(int64_t revision, int64_t ack_nanos) {
  absl::MutexLock l(&mu_);
  auto it = events_waiting_.find(revision);
  if (it != events_waiting_.end()) {
    ++events_before_ack_;
    ack_to_event_.Record(0);
    events_waiting_.erase(it);
  } else {
    acks_waiting_[revision] = ack_nanos;
  }
}

void WatchTracker::WaitForEvents(absl::Duration timeout) {
  absl::MutexLock l(&mu_);
  auto done = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return acks_waiting_.empty() || finished_flag_;
  };
  mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
}

void WatchTracker::Stop() {
  {
    absl::MutexLock l(&mu_);
    if (!opened_ || finished_flag_) return;
    cancelled_by_us_ = true;
  }
  ctx_.TryCancel();
  absl::MutexLock l(&mu_);
  mu_.Await(absl::Condition(&finished_flag_));
}

void WatchTracker::Report(LoadResult* result) {
  absl::MutexLock l(&mu_);
  result->watch_events += events_;
  result->events_before_ack += events_before_ack_;
  result->watch_latency.Merge(latency_);
  result->ack_to_event.Merge(ack_to_event_);
  result->events_missing += static_cast<int64_t>(acks_waiting_.size());
  result->events_unacked += static_cast<int64_t>(events_waiting_.size());
  if (!acks_waiting_.empty()) {
    errors_.errors["watch: acknowledged put whose event never arrived"] +=
        static_cast<int64_t>(acks_waiting_.size());
  }
  for (const auto& [what, count] : errors_.errors) {
    result->error_kinds[what] += count;
    result->errors += count;
  }
  errors_.errors.clear();
}

}  // namespace bench
