#include "test/bench/kv_load.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "test/bench/load_engine.h"
#include "test/bench/watch_tracker.h"

namespace bench {
namespace {

// What one client does per operation.
enum class Mode {
  kFill,  // Put key n of the key space (n = the budget's sequence number)
  kPut,   // Put a random key
  kGet,   // linearizable Range of a random key
  kGetSerializable,
  kTxnCas,    // Range for mod_revision, then Txn(mod_revision == it ? put)
  kWatchPut,  // Put a random key with the send time in the value; report the ack
};

// What every client of one phase shares; outlives the clients' operations.
struct PhaseContext {
  const LoadOptions* options;
  const KeyFormat* keys;
  const std::string* value;
  Budget* budget;
  absl::BlockingCounter* finished;
  WatchTracker* tracker;  // kWatchPut only
};

// One closed-loop client: one call in flight at a time, the next started from the
// completion of the last. See load_engine.h for the threading model.
class KvClient final : public Completion {
 public:
  KvClient(Mode mode, const PhaseContext& phase, etcdserverpb::KV::Stub* stub,
           grpc::CompletionQueue* cq, uint64_t seed)
      : mode_(mode),
        phase_(phase),
        stub_(stub),
        cq_(cq),
        rng_(seed),
        pick_(0, phase.options->key_space - 1),
        error_prefix_(mode == Mode::kFill ? "fill: " : "") {}

  // Starts the first operation (or finishes at once if the budget is spent).
  void Start() { Next(); }
  void Done(bool ok) override;

  // Read once the phase is over.
  const ClientTally& tally() const { return tally_; }
  int64_t get_misses() const { return get_misses_; }
  int64_t cas_succeeded() const { return cas_succeeded_; }
  int64_t cas_conflicts() const { return cas_conflicts_; }
  const LatencyHistogram& cas_txn_latency() const { return cas_txn_latency_; }

 private:
  enum class Step { kPut, kRange, kTxn };

  void Next();
  void NewContext();
  void SendPut();
  void SendRange();
  void SendTxn(int64_t mod_revision);
  void RecordOk(int64_t now) {
    ++tally_.ok;
    tally_.latency.Record(now - op_start_);
  }

  const Mode mode_;
  const PhaseContext phase_;
  etcdserverpb::KV::Stub* const stub_;
  grpc::CompletionQueue* const cq_;
  std::mt19937_64 rng_;
  std::uniform_int_distribution<int64_t> pick_;
  const std::string error_prefix_;

  Step step_ = Step::kPut;
  int64_t op_start_ = 0;
  int64_t txn_start_ = 0;
  // The call's context comes before its reader, which lives in the context's call arena.
  std::optional<grpc::ClientContext> ctx_;
  grpc::Status status_;
  etcdserverpb::PutRequest put_req_;
  etcdserverpb::PutResponse put_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::PutResponse>> put_rpc_;
  etcdserverpb::RangeRequest range_req_;
  etcdserverpb::RangeResponse range_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::RangeResponse>> range_rpc_;
  etcdserverpb::TxnRequest txn_req_;
  etcdserverpb::TxnResponse txn_resp_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<etcdserverpb::TxnResponse>> txn_rpc_;

  ClientTally tally_;
  int64_t get_misses_ = 0;
  int64_t cas_succeeded_ = 0;
  int64_t cas_conflicts_ = 0;
  LatencyHistogram cas_txn_latency_;
};

void KvClient::Next() {
  const int64_t n = phase_.budget->Take();
  if (n < 0) {
    phase_.finished->DecrementCount();  // the last thing this client does
    return;
  }
  op_start_ = NowNanos();
  const std::string key = phase_.keys->Key(mode_ == Mode::kFill ? n : pick_(rng_));
  switch (mode_) {
    case Mode::kFill:
    case Mode::kPut:
      put_req_.set_key(key);
      put_req_.set_value(*phase_.value);
      SendPut();
      return;
    case Mode::kWatchPut: {
      put_req_.set_key(key);
      std::string* v = put_req_.mutable_value();
      *v = *phase_.value;
      const std::string t = WatchTracker::EncodeSendTime(op_start_);
      std::memcpy(v->data(), t.data(), t.size());
      SendPut();
      return;
    }
    case Mode::kGet:
    case Mode::kGetSerializable:
    case Mode::kTxnCas:
      range_req_.set_key(key);
      range_req_.set_serializable(mode_ == Mode::kGetSerializable);
      SendRange();
      return;
  }
}

void KvClient::NewContext() {
  put_rpc_.reset();
  range_rpc_.reset();
  txn_rpc_.reset();
  ctx_.reset();
  ctx_.emplace();
  ctx_->set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoNanoseconds(phase_.options->timeout));
}

void KvClient::SendPut() {
  step_ = Step::kPut;
  NewContext();
  put_rpc_ = stub_->PrepareAsyncPut(&*ctx_, put_req_, cq_);
  put_rpc_->StartCall();
  put_rpc_->Finish(&put_resp_, &status_, this);
}

void KvClient::SendRange() {
  step_ = Step::kRange;
  NewContext();
  range_rpc_ = stub_->PrepareAsyncRange(&*ctx_, range_req_, cq_);
  range_rpc_->StartCall();
  range_rpc_->Finish(&range_resp_, &status_, this);
}

void KvClient::SendTxn(int64_t mod_revision) {
  step_ = Step::kTxn;
  txn_req_.Clear();
  etcdserverpb::Compare* c = txn_req_.add_compare();
  c->set_result(etcdserverpb::Compare::EQUAL);
  c->set_target(etcdserverpb::Compare::MOD);
  c->set_key(range_req_.key());
  c->set_mod_revision(mod_revision);
  etcdserverpb::PutRequest* put = txn_req_.add_success()->mutable_request_put();
  put->set_key(range_req_.key());
  put->set_value(*phase_.value);
  txn_start_ = NowNanos();
  NewContext();
  txn_rpc_ = stub_->PrepareAsyncTxn(&*ctx_, txn_req_, cq_);
  txn_rpc_->StartCall();
  txn_rpc_->Finish(&txn_resp_, &status_, this);
}

void KvClient::Done(bool /*ok: always true for a unary Finish*/) {
  const int64_t now = NowNanos();
  if (!status_.ok()) {
    tally_.RecordError(absl::StrCat(error_prefix_, StatusCodeName(status_.error_code()), ": ",
                                    status_.error_message()));
    Next();
    return;
  }
  switch (step_) {
    case Step::kPut:
      RecordOk(now);
      if (mode_ == Mode::kWatchPut) phase_.tracker->OnPutAcked(put_resp_.header().revision(), now);
      break;
    case Step::kRange:
      if (mode_ == Mode::kTxnCas) {
        // An absent key has mod_revision 0, which etcd's compare accepts.
        SendTxn(range_resp_.kvs_size() > 0 ? range_resp_.kvs(0).mod_revision() : 0);
        return;
      }
      if (range_resp_.kvs_size() == 0) ++get_misses_;
      if (range_resp_.kvs_size() == 0 && phase_.options->fill) {
        tally_.RecordError("kvbench: key missing although the key space was filled");
      } else {
        RecordOk(now);
      }
      break;
    case Step::kTxn:
      cas_txn_latency_.Record(now - txn_start_);
      ++(txn_resp_.succeeded() ? cas_succeeded_ : cas_conflicts_);
      RecordOk(now);
      break;
  }
  Next();
}

// Runs one phase with `options.clients` clients spread over the connections and queues;
// returns its wall time. The clients are appended to `clients` and must outlive the
// engine's queues.
absl::Duration RunPhase(LoadEngine& engine, Mode mode, const LoadOptions& o, const KeyFormat& keys,
                        const std::string& value, Budget& budget, WatchTracker* tracker,
                        uint64_t seed_base, std::vector<std::unique_ptr<KvClient>>* clients) {
  absl::BlockingCounter finished(o.clients);
  const PhaseContext phase{&o, &keys, &value, &budget, &finished, tracker};
  const size_t first = clients->size();
  for (int i = 0; i < o.clients; ++i) {
    clients->push_back(std::make_unique<KvClient>(mode, phase, engine.kv(i), engine.queue(i),
                                                  seed_base * 1000003 + static_cast<uint64_t>(i)));
  }
  const int64_t start = NowNanos();
  for (size_t i = first; i < clients->size(); ++i) (*clients)[i]->Start();
  finished.Wait();
  return absl::Nanoseconds(NowNanos() - start);
}

// Random printable bytes: neither compressible nor all alike.
std::string MakeValue(int size, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> c('a', 'z');
  std::string v(size, ' ');
  for (char& ch : v) ch = static_cast<char>(c(rng));
  return v;
}

// Adds what clients [from, to) saw to `r`: to the measured phase's figures, or only the
// operation count and errors for the fill phase.
void AddTallies(const std::vector<std::unique_ptr<KvClient>>& clients, size_t from, size_t to,
                bool measured, LoadResult* r) {
  ClientTally all;
  for (size_t i = from; i < to; ++i) {
    all.Merge(clients[i]->tally());
    r->get_misses += clients[i]->get_misses();
    r->cas_succeeded += clients[i]->cas_succeeded();
    r->cas_conflicts += clients[i]->cas_conflicts();
    r->cas_txn_latency.Merge(clients[i]->cas_txn_latency());
  }
  for (const auto& [what, count] : all.errors) {
    r->error_kinds[what] += count;
    r->errors += count;
  }
  if (measured) {
    r->ops += all.ok;
    r->latency.Merge(all.latency);
  } else {
    r->fill_ops += all.ok;
  }
}

}  // namespace

absl::StatusOr<Workload> ParseWorkload(const std::string& name) {
  for (Workload w : {Workload::kPut, Workload::kGet, Workload::kGetSerializable, Workload::kTxnCas,
                     Workload::kWatchLatency}) {
    if (name == WorkloadName(w)) return w;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown --workload \"", name, "\" (put|get|get-serializable|txn-cas|watch-latency)"));
}

const char* WorkloadName(Workload w) {
  switch (w) {
    case Workload::kPut:
      return "put";
    case Workload::kGet:
      return "get";
    case Workload::kGetSerializable:
      return "get-serializable";
    case Workload::kTxnCas:
      return "txn-cas";
    case Workload::kWatchLatency:
      return "watch-latency";
  }
  return "?";
}

absl::Status ValidateLoadOptions(const LoadOptions& o) {
  if (o.endpoints.empty()) return absl::InvalidArgumentError("--endpoints is empty");
  if (o.conns < 1) return absl::InvalidArgumentError("--conns must be at least 1");
  if (o.clients < 1) return absl::InvalidArgumentError("--clients must be at least 1");
  if (o.pollers < 1 || o.pollers > 16) {
    return absl::InvalidArgumentError("--pollers must be between 1 and 16");
  }
  if (o.duration <= absl::ZeroDuration() && o.total < 1) {
    return absl::InvalidArgumentError("--total must be at least 1 (or give --duration)");
  }
  if (o.fill_only &&
      !(o.fill && (o.workload == Workload::kGet || o.workload == Workload::kGetSerializable ||
                   o.workload == Workload::kTxnCas))) {
    return absl::InvalidArgumentError(
        "--fill-only needs --fill and a workload that fills (get, get-serializable, txn-cas)");
  }
  if (o.key_space < 1) return absl::InvalidArgumentError("--key-space must be at least 1");
  if (o.val_size < 0) return absl::InvalidArgumentError("--val-size must not be negative");
  if (o.prefix.empty()) return absl::InvalidArgumentError("--prefix must not be empty");
  for (char c : o.prefix) {
    if (c < '!' || c > '~') {
      return absl::InvalidArgumentError("--prefix must be printable ASCII without spaces");
    }
  }
  if (!KeyFormat(o.prefix, o.key_size).Fits(o.key_space - 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--key-size ", o.key_size, " cannot hold the prefix \"", o.prefix, "\" and ",
        absl::StrCat(o.key_space - 1).size(), " digits for --key-space ", o.key_space));
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& o) {
  if (absl::Status s = ValidateLoadOptions(o); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<LoadEngine>> engine =
      LoadEngine::Connect(o.endpoints, o.conns, o.pollers, o.connect_timeout);
  if (!engine.ok()) return engine.status();

  const KeyFormat keys(o.prefix, o.key_size);
  const int value_size = o.workload == Workload::kWatchLatency
                             ? std::max(o.val_size, WatchTracker::kSendTimeBytes)
                             : o.val_size;
  const std::string value = MakeValue(value_size, o.seed);
  LoadResult r;
  // Clients live until the queues are shut down; the tracker likewise.
  std::vector<std::unique_ptr<KvClient>> clients;
  std::unique_ptr<WatchTracker> tracker;
  absl::Status failed;

  const bool fill =
      o.fill && (o.workload == Workload::kGet || o.workload == Workload::kGetSerializable ||
                 o.workload == Workload::kTxnCas);
  if (fill) {
    Budget budget = Budget::Count(o.key_space);
    r.fill_elapsed =
        RunPhase(**engine, Mode::kFill, o, keys, value, budget, nullptr, o.seed, &clients);
    AddTallies(clients, 0, clients.size(), /*measured=*/false, &r);
  }

  Mode mode = Mode::kPut;
  switch (o.workload) {
    case Workload::kPut:
      mode = Mode::kPut;
      break;
    case Workload::kGet:
      mode = Mode::kGet;
      break;
    case Workload::kGetSerializable:
      mode = Mode::kGetSerializable;
      break;
    case Workload::kTxnCas:
      mode = Mode::kTxnCas;
      break;
    case Workload::kWatchLatency:
      mode = Mode::kWatchPut;
      break;
  }
  if (o.workload == Workload::kWatchLatency && !o.fill_only) {
    tracker = std::make_unique<WatchTracker>((*engine)->watch(0), (*engine)->queue(0),
                                             keys.prefix(), keys.RangeEnd());
    failed = tracker->Start(o.connect_timeout + o.timeout);
  }
  if (failed.ok() && !o.fill_only) {
    Budget budget = o.duration > absl::ZeroDuration()
                        ? Budget::Until(NowNanos() + absl::ToInt64Nanoseconds(o.duration))
                        : Budget::Count(o.total);
    const size_t first = clients.size();
    r.elapsed =
        RunPhase(**engine, mode, o, keys, value, budget, tracker.get(), o.seed + 1, &clients);
    AddTallies(clients, first, clients.size(), /*measured=*/true, &r);
    if (tracker != nullptr) tracker->WaitForEvents(o.watch_drain);
  }
  if (tracker != nullptr) {
    tracker->Stop();
    tracker->Report(&r);
  }
  (*engine)->Shutdown();
  if (!failed.ok()) return failed;
  return r;
}

}  // namespace bench
