#include "test/bench/load_engine.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace bench {
namespace {

// etcd clients take "http://host:port" as well as "host:port".
std::string Target(std::string endpoint) {
  for (const char* scheme : {"http://", "https://"}) {
    if (absl::StartsWith(endpoint, scheme)) endpoint = endpoint.substr(std::string(scheme).size());
  }
  if (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  return endpoint;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadEngine>> LoadEngine::Connect(
    const std::vector<std::string>& endpoints, int conns, int pollers,
    absl::Duration connect_timeout) {
  if (endpoints.empty()) return absl::InvalidArgumentError("no endpoints");
  std::unique_ptr<LoadEngine> e(new LoadEngine());
  const auto deadline =
      std::chrono::system_clock::now() + absl::ToChronoNanoseconds(connect_timeout);
  for (int i = 0; i < conns; ++i) {
    const std::string& endpoint = endpoints[i % endpoints.size()];
    grpc::ChannelArguments args;
    // A channel of its own per connection, as etcd's benchmark has one client per --conns.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt("kvbench.connection", i);
    args.SetMaxReceiveMessageSize(-1);
    std::shared_ptr<grpc::Channel> ch =
        grpc::CreateCustomChannel(Target(endpoint), grpc::InsecureChannelCredentials(), args);
    if (!ch->WaitForConnected(deadline)) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", endpoint, " within ",
                                                 absl::FormatDuration(connect_timeout)));
    }
    e->kv_.push_back(etcdserverpb::KV::NewStub(ch));
    e->watch_.push_back(etcdserverpb::Watch::NewStub(ch));
    e->channels_.push_back(std::move(ch));
  }
  for (int j = 0; j < pollers; ++j) {
    e->queues_.push_back(std::make_unique<grpc::CompletionQueue>());
  }
  for (int j = 0; j < pollers; ++j) {
    grpc::CompletionQueue* cq = e->queues_[j].get();
    e->threads_.emplace_back([cq] {
      void* tag;
      bool ok;
      while (cq->Next(&tag, &ok)) static_cast<Completion*>(tag)->Done(ok);
    });
  }
  return e;
}

LoadEngine::~LoadEngine() { Shutdown(); }

void LoadEngine::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& cq : queues_) cq->Shutdown();
  for (std::thread& t : threads_) t.join();
}

int64_t Budget::Take() {
  if (total_ >= 0) {
    const int64_t n = next_.fetch_add(1, std::memory_order_relaxed);
    return n < total_ ? n : -1;
  }
  if (NowNanos() >= deadline_) return -1;
  return next_.fetch_add(1, std::memory_order_relaxed);
}

std::string KeyFormat::Key(int64_t n) const {
  std::string digits = absl::StrCat(n);
  const size_t pad = key_size_ - prefix_.size() - digits.size();
  return absl::StrCat(prefix_, std::string(pad, '0'), digits);
}

bool KeyFormat::Fits(int64_t largest) const {
  return prefix_.size() + absl::StrCat(largest).size() <= static_cast<size_t>(key_size_);
}

std::string KeyFormat::RangeEnd() const {
  // The prefix is printable text (checked by kvbench), so its last byte is below 0xff.
  std::string end = prefix_;
  end.back() = static_cast<char>(end.back() + 1);
  return end;
}

void ClientTally::RecordError(const grpc::Status& status) {
  ++errors[absl::StrCat(StatusCodeName(status.error_code()), ": ", status.error_message())];
}

int64_t ClientTally::error_count() const {
  int64_t n = 0;
  for (const auto& [what, count] : errors) n += count;
  return n;
}

void ClientTally::Merge(const ClientTally& other) {
  ok += other.ok;
  latency.Merge(other.latency);
  for (const auto& [what, count] : other.errors) errors[what] += count;
}

const char* StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN_CODE";
  }
}

}  // namespace bench
