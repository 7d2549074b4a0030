#include "test/linearizability/internal/search.h"

#include <algorithm>
#include <limits>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "test/linearizability/internal/set_interner.h"

namespace lincheck::internal {
namespace {

// The list is doubly linked through arrays; node 0 is its head, the others its entries.
constexpr int32_t kHead = 0;
constexpr int32_t kEnd = -1;
// The clock is read once per this many steps.
constexpr int64_t kStepsPerClockRead = 4096;
// The `witness_from` of a configuration whose next operation is unconstrained.
constexpr ValueId kAnyNext = std::numeric_limits<ValueId>::min();

// Whether `op` may take effect when the register holds `state`: its recorded result allows
// it, and, for an unknown op, it changes something (else leaving it out is as good).
bool Admissible(const RegisterOp& op, ValueId state) {
  const Transition t = Apply(op, state);
  return t.legal && !(op.unknown && t.next == state);
}

bool IsBlindWrite(const RegisterOp& op) {
  return op.kind == OpKind::kPut || op.kind == OpKind::kDelete;
}

class Search {
 public:
  Search(const std::vector<RegisterOp>& ops, const SearchLimits& limits)
      : ops_(ops), limits_(limits), sets_(ops.size()) {
    BuildList();
    GroupUnknownOps();
  }

  SearchResult Run() {
    // Each pass of the loop is one step. A configuration is walked in three phases: on
    // entering it, a read-only op is forced if one may come next; else the known ops
    // available, in list order; then the unknown ops that may help.
    enum class Phase { kEnter, kKnown, kUnknown };
    Phase phase = Phase::kEnter;
    int32_t node = kHead;  // kKnown: the entry to try
    size_t cursor = 0;     // kUnknown: the candidate to try
    while (next_[kHead] != kEnd) {
      if (OutOfBudget()) return Finish(Verdict::kUnknown);
      Attempt attempt = Attempt::kNotHere;
      switch (phase) {
        case Phase::kEnter:
          attempt = ForceReadOnly();
          if (attempt == Attempt::kNotHere) {
            phase = Phase::kKnown;
            node = next_[kHead];
          }
          break;
        case Phase::kKnown:
          // The walk passes only calls, and every call precedes its return: node is an entry.
          if (!entries_[node].is_call) {
            // The first remaining return: what comes next must be called before it.
            CollectUnknownCandidates(entries_[node].rank);
            phase = Phase::kUnknown;
            cursor = 0;
          } else if (!IsReadOnly(ops_[entries_[node].op])) {
            attempt = TryKnown(node);
          }
          if (attempt == Attempt::kNotHere && phase == Phase::kKnown) node = next_[node];
          break;
        case Phase::kUnknown:
          attempt = cursor < Candidates().size() ? TryUnknown(cursor) : Attempt::kDeadEnd;
          if (attempt == Attempt::kNotHere) ++cursor;
          break;
      }
      if (attempt == Attempt::kLinearized) {
        phase = Phase::kEnter;
      } else if (attempt == Attempt::kDeadEnd) {
        const Frame* resumed = Backtrack();
        if (resumed == nullptr) return Finish(Verdict::kNotLinearizable);
        if (resumed->call_node != kEnd) {
          phase = Phase::kKnown;
          node = next_[resumed->call_node];
        } else {
          phase = Phase::kUnknown;
          cursor = resumed->cursor + 1;
        }
      }
    }
    // Every known op is linearized; the unknown ones left may all be left out.
    return Finish(Verdict::kLinearizable);
  }

 private:
  struct Entry {
    int32_t op;
    bool is_call;
    int32_t match;  // the node of the same operation's other entry
    int32_t rank;   // position in the time order of all calls and returns
  };
  // Unknown ops with the same effect. They are interchangeable, except that one called
  // earlier is available sooner: so they are used in the order of their calls, and a group
  // offers only its first unused op.
  struct UnknownGroup {
    std::vector<int32_t> ops;  // by call
    size_t used = 0;
  };
  struct Frame {
    int32_t op;
    int32_t call_node;  // a known op's call entry; kEnd for an unknown op
    size_t cursor;      // an unknown op: its place in the parent's candidates
    int32_t group;      // an unknown op: its group
    ValueId state_before;
    ValueId witness_from_before;
    SetInterner::SetId linearized_before;
    // Linearized by the read-only rule: its alternatives need no trying.
    bool forced;
  };
  enum class Attempt {
    kLinearized,
    kNotHere,  // try the next candidate
    kDeadEnd,  // no candidate at this point can succeed: backtrack
  };
  // What the memo keeps: the configuration after some ops are linearized.
  struct Configuration {
    SetInterner::SetId linearized;
    ValueId state;
    ValueId witness_from;
    template <typename H>
    friend H AbslHashValue(H h, const Configuration& c) {
      return H::combine(std::move(h), c.linearized, c.state, c.witness_from);
    }
    bool operator==(const Configuration&) const = default;
  };

  // The list holds the call and return entries of the known ops; unknown ops stay out of it
  // (they never return) and only have their call's rank, to tell when they are available.
  void BuildList() {
    const int32_t n = static_cast<int32_t>(ops_.size());
    // (time, returns after calls, op): the order of the list.
    std::vector<std::tuple<int64_t, bool, int32_t>> order;
    order.reserve(2 * n);
    for (int32_t i = 0; i < n; ++i) {
      order.emplace_back(ops_[i].call, false, i);
      if (!ops_[i].unknown) order.emplace_back(ops_[i].ret, true, i);
    }
    std::sort(order.begin(), order.end());
    call_rank_.assign(n, 0);
    entries_.assign(1, Entry{-1, false, -1, -1});
    std::vector<int32_t> call_node(n);
    for (int32_t rank = 0; rank < static_cast<int32_t>(order.size()); ++rank) {
      const auto& [time, is_return, op] = order[rank];
      if (!is_return) call_rank_[op] = rank;
      if (ops_[op].unknown) continue;
      const int32_t node = static_cast<int32_t>(entries_.size());
      entries_.push_back(Entry{op, !is_return, -1, rank});
      if (is_return) {
        entries_[node].match = call_node[op];
        entries_[call_node[op]].match = node;
      } else {
        call_node[op] = node;
      }
    }
    next_.assign(entries_.size(), kEnd);
    prev_.assign(entries_.size(), kHead);
    for (int32_t node = 1; node < static_cast<int32_t>(entries_.size()); ++node) {
      prev_[node] = node - 1;
      next_[node - 1] = node;
    }
  }

  void GroupUnknownOps() {
    std::vector<int32_t> by_call;
    ValueId max_value = kAbsent;
    for (int32_t i = 0; i < static_cast<int32_t>(ops_.size()); ++i) {
      const RegisterOp& op = ops_[i];
      max_value = std::max({max_value, op.value, op.expect, op.read});
      if (op.unknown) by_call.push_back(i);
    }
    std::sort(by_call.begin(), by_call.end(),
              [this](int32_t a, int32_t b) { return call_rank_[a] < call_rank_[b]; });
    value_stamp_.assign(max_value + 2, 0);
    groups_landing_on_.resize(max_value + 2);
    absl::flat_hash_map<std::tuple<OpKind, ValueId, ValueId>, int32_t> group_of_effect;
    for (int32_t i : by_call) {
      const RegisterOp& op = ops_[i];
      const ValueId lands_on = op.kind == OpKind::kDelete ? kAbsent : op.value;
      const ValueId expect = op.kind == OpKind::kCas ? op.expect : kAbsent;
      auto [it, inserted] = group_of_effect.try_emplace(std::make_tuple(op.kind, lands_on, expect),
                                                        static_cast<int32_t>(groups_.size()));
      if (inserted) {
        groups_.emplace_back();
        groups_landing_on_[lands_on + 1].push_back(it->second);
      }
      groups_[it->second].ops.push_back(i);
    }
    group_stamp_.assign(groups_.size(), 0);
  }

  // Whether the search may go on; counts a step.
  bool OutOfBudget() {
    if (limits_.max_steps > 0 && steps_ >= limits_.max_steps) return true;
    ++steps_;
    return limits_.deadline != absl::InfiniteFuture() && steps_ % kStepsPerClockRead == 0 &&
           limits_.clock->Now() >= limits_.deadline;
  }

  // Whether `op` may come next in the current configuration, given that it is available.
  // After an unknown op, the next must be one that it enables: one that could not come next
  // without it. Any linearization can be rearranged so: an unknown op followed by one it does
  // not enable can be dropped (if that one is a blind write) or moved after it (a read-only
  // op), and other ops are enabled by any change.
  bool MayComeNext(const RegisterOp& op) const {
    if (!Admissible(op, state_)) return false;
    if (witness_from_ == kAnyNext) return true;
    return !IsBlindWrite(op) && !Admissible(op, witness_from_);
  }

  // Linearizes the first available read-only op that may come next, if any: doing so never
  // loses a linearization (moving a read-only op earlier, to a point where it is legal,
  // breaks nothing), so its alternatives need not be tried.
  Attempt ForceReadOnly() {
    for (int32_t node = next_[kHead]; node != kEnd && entries_[node].is_call; node = next_[node]) {
      const int32_t op = entries_[node].op;
      if (!IsReadOnly(ops_[op]) || !MayComeNext(ops_[op])) continue;
      return Linearize(Frame{.op = op, .call_node = node, .forced = true});
    }
    return Attempt::kNotHere;
  }

  // REQUIRES: `node` is a call entry before the first remaining return.
  Attempt TryKnown(int32_t node) {
    const int32_t op = entries_[node].op;
    if (!MayComeNext(ops_[op])) return Attempt::kNotHere;
    return Linearize(Frame{.op = op, .call_node = node, .forced = false});
  }

  Attempt TryUnknown(size_t cursor) {
    const int32_t group = Candidates()[cursor];
    const int32_t op = groups_[group].ops[groups_[group].used];
    if (!MayComeNext(ops_[op])) return Attempt::kNotHere;
    return Linearize(
        Frame{.op = op, .call_node = kEnd, .cursor = cursor, .group = group, .forced = false});
  }

  // The unknown ops worth trying in the current configuration. An unknown op must enable
  // the op after it (MayComeNext), so it must leave the register holding a value that an
  // available op needs: a get's result, or a successful cas's expected value, or that of an
  // unknown cas which in turn lands on a needed value. When a failed cas finds its expected
  // value in the register, any change enables it. `first_return_rank`: the rank of the first
  // remaining return; only ops called before it are available.
  void CollectUnknownCandidates(int32_t first_return_rank) {
    if (candidates_.size() <= stack_.size()) candidates_.resize(stack_.size() + 1);
    std::vector<int32_t>& out = candidates_[stack_.size()];
    out.clear();
    if (groups_.empty()) return;
    ++stamp_;
    wanted_.clear();
    bool any_change = false;
    for (int32_t node = next_[kHead]; node != kEnd && entries_[node].is_call; node = next_[node]) {
      const RegisterOp& op = ops_[entries_[node].op];
      if (op.kind == OpKind::kGet) {
        Want(op.read);
      } else if (op.kind == OpKind::kCas && op.succeeded) {
        Want(op.expect);
      } else if (op.kind == OpKind::kCas && op.expect == state_) {
        any_change = true;
      }
    }
    auto available = [&](int32_t g) {
      return groups_[g].used < groups_[g].ops.size() &&
             call_rank_[groups_[g].ops[groups_[g].used]] < first_return_rank;
    };
    for (size_t i = 0; i < wanted_.size(); ++i) {  // grows as it goes
      for (int32_t g : groups_landing_on_[wanted_[i] + 1]) {
        const RegisterOp& op = ops_[groups_[g].ops[0]];
        if (op.kind == OpKind::kCas && available(g)) Want(op.expect);
      }
    }
    auto consider = [&](int32_t g) {
      if (group_stamp_[g] == stamp_ || !available(g)) return;
      group_stamp_[g] = stamp_;
      out.push_back(g);
    };
    if (any_change) {
      for (int32_t g = 0; g < static_cast<int32_t>(groups_.size()); ++g) consider(g);
    } else {
      for (ValueId v : wanted_) {
        for (int32_t g : groups_landing_on_[v + 1]) consider(g);
      }
    }
  }

  void Want(ValueId v) {
    if (value_stamp_[v + 1] == stamp_) return;
    value_stamp_[v + 1] = stamp_;
    wanted_.push_back(v);
  }

  // The unknown candidates of the current configuration.
  const std::vector<int32_t>& Candidates() const { return candidates_[stack_.size()]; }

  // Linearizes frame.op next, unless the configuration it leads to was reached before: then
  // it was explored and failed, and for a forced op that means this point fails too.
  Attempt Linearize(Frame frame) {
    const RegisterOp& op = ops_[frame.op];
    const Configuration next{sets_.Insert(linearized_, frame.op), Apply(op, state_).next,
                             op.unknown ? state_ : kAnyNext};
    if (!seen_.insert(next).second) {
      return frame.forced ? Attempt::kDeadEnd : Attempt::kNotHere;
    }
    frame.state_before = state_;
    frame.witness_from_before = witness_from_;
    frame.linearized_before = linearized_;
    stack_.push_back(frame);
    linearized_ = next.linearized;
    state_ = next.state;
    witness_from_ = next.witness_from;
    if (frame.call_node != kEnd) {
      Lift(frame.call_node);
    } else {
      ++groups_[frame.group].used;
    }
    if (stack_.size() > best_.size()) RecordLongestPrefix();
    return Attempt::kLinearized;
  }

  // Undoes linearizations until one whose alternatives are still to be tried, and returns
  // its frame (valid until the next push); nullptr when there is none left: no
  // linearization exists.
  const Frame* Backtrack() {
    while (!stack_.empty()) {
      popped_ = stack_.back();
      stack_.pop_back();
      best_shared_ = std::min(best_shared_, stack_.size());
      linearized_ = popped_.linearized_before;
      state_ = popped_.state_before;
      witness_from_ = popped_.witness_from_before;
      if (popped_.call_node != kEnd) {
        Unlift(popped_.call_node);
      } else {
        --groups_[popped_.group].used;
      }
      if (!popped_.forced) return &popped_;
    }
    return nullptr;
  }

  // Copies only the frames pushed since the last copy: amortized O(1) per push.
  void RecordLongestPrefix() {
    best_.resize(best_shared_);
    for (size_t i = best_shared_; i < stack_.size(); ++i) best_.push_back(stack_[i].op);
    best_shared_ = stack_.size();
    best_state_ = state_;
  }

  void Unlink(int32_t node) {
    next_[prev_[node]] = next_[node];
    if (next_[node] != kEnd) prev_[next_[node]] = prev_[node];
  }
  // REQUIRES: undoes the latest Unlink still in effect (dancing links).
  void Relink(int32_t node) {
    next_[prev_[node]] = node;
    if (next_[node] != kEnd) prev_[next_[node]] = node;
  }
  void Lift(int32_t call_node) {
    Unlink(call_node);
    Unlink(entries_[call_node].match);
  }
  void Unlift(int32_t call_node) {
    Relink(entries_[call_node].match);
    Relink(call_node);
  }

  SearchResult Finish(Verdict verdict) {
    SearchResult result;
    result.verdict = verdict;
    result.steps = steps_;
    result.configurations = seen_.size();
    if (verdict != Verdict::kLinearizable) {
      result.longest_prefix = best_;
      result.value_after_prefix = best_state_;
    }
    return result;
  }

  const std::vector<RegisterOp>& ops_;
  const SearchLimits limits_;

  std::vector<Entry> entries_;
  std::vector<int32_t> next_;
  std::vector<int32_t> prev_;
  std::vector<int32_t> call_rank_;  // of every op

  std::vector<UnknownGroup> groups_;
  // By value + 1 (kAbsent first): the groups whose ops leave the register holding it.
  std::vector<std::vector<int32_t>> groups_landing_on_;
  // candidates_[d]: the unknown candidates (groups) of the configuration at depth d.
  std::vector<std::vector<int32_t>> candidates_;
  // Scratch for CollectUnknownCandidates: an entry equal to stamp_ marks a value wanted, or
  // a group taken, in the current collection.
  std::vector<ValueId> wanted_;
  std::vector<uint64_t> value_stamp_;
  std::vector<uint64_t> group_stamp_;
  uint64_t stamp_ = 0;  // 64 bits: never wraps around

  // The current configuration.
  SetInterner sets_;
  SetInterner::SetId linearized_ = SetInterner::kEmpty;
  ValueId state_ = kAbsent;
  // After an unknown op: the register's value before it (see MayComeNext); else kAnyNext.
  ValueId witness_from_ = kAnyNext;

  absl::flat_hash_set<Configuration> seen_;
  std::vector<Frame> stack_;
  Frame popped_{};
  int64_t steps_ = 0;

  // The longest prefix so far, as op indices; its first best_shared_ ops are also the ops of
  // the first best_shared_ frames of stack_.
  std::vector<int32_t> best_;
  size_t best_shared_ = 0;
  ValueId best_state_ = kAbsent;
};

}  // namespace

SearchResult FindLinearization(const std::vector<RegisterOp>& ops, const SearchLimits& limits) {
  return Search(ops, limits).Run();
}

}  // namespace lincheck::internal
