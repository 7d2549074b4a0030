// kvbench: a closed-loop load generator for any etcd v3 endpoint list (ours or etcd's).
//
//   kvbench --endpoints 127.0.0.1:2379 --workload put --conns 16 --clients 256 --total 100000
//   kvbench --endpoints 127.0.0.1:2379 --workload get-serializable --duration 10s --json
//
// Workloads: put, get, get-serializable, txn-cas, watch-latency (see kv_load.h). Prints the
// throughput (successful operations per second of the measured phase) and the latency
// p50/p90/p99/p99.9/max of successful operations, and every error by status and message;
// --json prints one JSON object instead. Exit status: 0 when every call succeeded, 1 when
// some failed or the run could not happen, 2 for bad flags.
#include <cstdio>
#include <iostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/flags.h"
#include "test/bench/kv_load.h"

namespace {

double Ms(int64_t nanos) { return static_cast<double>(nanos) / 1e6; }

std::string JsonString(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<int>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonLatency(const bench::LatencyHistogram& h) {
  return absl::StrFormat(
      "{\"count\": %d, \"mean\": %.4f, \"p50\": %.4f, \"p90\": %.4f, \"p99\": %.4f, "
      "\"p999\": %.4f, \"max\": %.4f}",
      h.count(), h.mean() / 1e6, Ms(h.Percentile(0.5)), Ms(h.Percentile(0.9)),
      Ms(h.Percentile(0.99)), Ms(h.Percentile(0.999)), Ms(h.max()));
}

std::string TextLatency(const bench::LatencyHistogram& h) {
  return absl::StrFormat("mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f",
                         h.mean() / 1e6, Ms(h.Percentile(0.5)), Ms(h.Percentile(0.9)),
                         Ms(h.Percentile(0.99)), Ms(h.Percentile(0.999)), Ms(h.max()));
}

std::string JsonSettings(const bench::LoadOptions& o) {
  return absl::StrFormat(
      "\"workload\": %s, \"endpoints\": %s, \"conns\": %d, \"clients\": %d, \"pollers\": %d, "
      "\"key_size\": %d, \"val_size\": %d, \"key_space\": %d",
      JsonString(bench::WorkloadName(o.workload)), JsonString(absl::StrJoin(o.endpoints, ",")),
      o.conns, o.clients, o.pollers, o.key_size, o.val_size, o.key_space);
}

void PrintJson(const bench::LoadOptions& o, const bench::LoadResult& r) {
  std::string out = absl::StrCat("{", JsonSettings(o));
  absl::StrAppendFormat(&out,
                        ", \"ops\": %d, \"errors\": %d, \"elapsed_s\": %.4f, "
                        "\"throughput\": %.2f, \"latency_ms\": %s",
                        r.ops, r.errors, absl::ToDoubleSeconds(r.elapsed), r.Throughput(),
                        JsonLatency(r.latency));
  std::vector<std::string> kinds;
  for (const auto& [what, count] : r.error_kinds) {
    kinds.push_back(absl::StrCat(JsonString(what), ": ", count));
  }
  absl::StrAppend(&out, ", \"error_kinds\": {", absl::StrJoin(kinds, ", "), "}");
  if (r.fill_ops > 0) {
    absl::StrAppendFormat(&out, ", \"fill\": {\"ops\": %d, \"elapsed_s\": %.4f}", r.fill_ops,
                          absl::ToDoubleSeconds(r.fill_elapsed));
  }
  if (o.workload == bench::Workload::kGet || o.workload == bench::Workload::kGetSerializable) {
    absl::StrAppendFormat(&out, ", \"get_misses\": %d", r.get_misses);
  }
  if (o.workload == bench::Workload::kTxnCas) {
    absl::StrAppendFormat(&out,
                          ", \"cas\": {\"succeeded\": %d, \"conflicts\": %d, "
                          "\"txn_latency_ms\": %s}",
                          r.cas_succeeded, r.cas_conflicts, JsonLatency(r.cas_txn_latency));
  }
  if (o.workload == bench::Workload::kWatchLatency) {
    absl::StrAppendFormat(&out,
                          ", \"watch\": {\"events\": %d, \"missing\": %d, \"unacked\": %d, "
                          "\"events_before_ack\": %d, \"latency_ms\": %s, "
                          "\"ack_to_event_ms\": %s}",
                          r.watch_events, r.events_missing, r.events_unacked, r.events_before_ack,
                          JsonLatency(r.watch_latency), JsonLatency(r.ack_to_event));
  }
  std::cout << out << "}\n";
}

void PrintText(const bench::LoadOptions& o, const bench::LoadResult& r) {
  std::cout << absl::StrFormat(
      "kvbench %s: endpoints %s, %d conns, %d clients, key %dB, value %dB, %d keys\n",
      bench::WorkloadName(o.workload), absl::StrJoin(o.endpoints, ","), o.conns, o.clients,
      o.key_size, o.val_size, o.key_space);
  if (r.fill_ops > 0) {
    std::cout << absl::StrFormat("  fill: %d puts in %.3fs\n", r.fill_ops,
                                 absl::ToDoubleSeconds(r.fill_elapsed));
  }
  std::cout << absl::StrFormat("  %d ok, %d errors in %.3fs: %.1f requests/s\n", r.ops, r.errors,
                               absl::ToDoubleSeconds(r.elapsed), r.Throughput());
  std::cout << "  latency (ms): " << TextLatency(r.latency) << "\n";
  if (r.get_misses > 0) {
    std::cout << absl::StrFormat("  %d reads found no key\n", r.get_misses);
  }
  if (o.workload == bench::Workload::kTxnCas) {
    std::cout << absl::StrFormat("  cas: %d succeeded, %d conflicts; txn call (ms): %s\n",
                                 r.cas_succeeded, r.cas_conflicts, TextLatency(r.cas_txn_latency));
  }
  if (o.workload == bench::Workload::kWatchLatency) {
    std::cout << absl::StrFormat(
        "  watch: %d events (%d missing, %d of unacknowledged puts, %d before the ack)\n",
        r.watch_events, r.events_missing, r.events_unacked, r.events_before_ack);
    std::cout << "  put sent -> event (ms): " << TextLatency(r.watch_latency) << "\n";
    std::cout << "  put acked -> event (ms): " << TextLatency(r.ack_to_event) << "\n";
  }
  if (!r.error_kinds.empty()) {
    std::cout << "  errors:\n";
    for (const auto& [what, count] : r.error_kinds) {
      std::cout << absl::StrFormat("    %8d  %s\n", count, what);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string endpoints = "127.0.0.1:2379", workload = "put", duration, timeout = "10s";
  std::string watch_drain = "5s", connect_timeout = "5s", prefix = "b";
  int64_t conns = 1, clients = 1, pollers = 2, total = 10000, key_size = 8, val_size = 256;
  int64_t key_space = 10000, seed = 1;
  bool json = false, fill = true, fill_only = false;
  common::FlagSet flags("kvbench");
  flags.String("endpoints", &endpoints, "comma-separated host:port list (http:// allowed)");
  flags.String("workload", &workload, "put|get|get-serializable|txn-cas|watch-latency");
  flags.Int("conns", &conns, "gRPC connections, spread over the endpoints");
  flags.Int("clients", &clients, "concurrent requests in flight, spread over the connections");
  flags.Int("pollers", &pollers, "completion-queue polling threads");
  flags.Int("total", &total, "operations to run (unless --duration)");
  flags.String("duration", &duration, "run for this long instead, e.g. 10s");
  flags.Int("key-size", &key_size, "bytes per key (prefix plus zero-padded key number)");
  flags.Int("val-size", &val_size, "bytes per value (at least 16 for watch-latency)");
  flags.Int("key-space", &key_space, "number of distinct keys");
  flags.String("prefix", &prefix, "key prefix (printable); watch-latency watches it");
  flags.Bool("fill", &fill, "get and txn-cas: write every key once before measuring");
  flags.Bool("fill-only", &fill_only, "only write the key space (then measure with --fill=false)");
  flags.String("timeout", &timeout, "deadline of each call");
  flags.String("connect-timeout", &connect_timeout, "how long to wait for each connection");
  flags.String("watch-drain", &watch_drain,
               "watch-latency: how long to wait for missing events after the writers stop");
  flags.Int("seed", &seed, "seeds key choice and values");
  flags.Bool("json", &json, "print one JSON object");
  if (absl::Status s = flags.Parse(argc, argv); !s.ok()) {
    if (absl::IsCancelled(s)) {
      std::cout << flags.Usage();
      return 0;
    }
    std::cerr << "kvbench: " << s.message() << "\n" << flags.Usage();
    return 2;
  }
  if (!flags.positional().empty()) {
    std::cerr << "kvbench: unexpected argument \"" << flags.positional()[0] << "\"\n";
    return 2;
  }

  bench::LoadOptions o;
  o.endpoints = absl::StrSplit(endpoints, ',', absl::SkipEmpty());
  absl::StatusOr<bench::Workload> w = bench::ParseWorkload(workload);
  if (!w.ok()) {
    std::cerr << "kvbench: " << w.status().message() << "\n";
    return 2;
  }
  o.workload = *w;
  o.conns = static_cast<int>(conns);
  o.clients = static_cast<int>(clients);
  o.pollers = static_cast<int>(pollers);
  o.total = total;
  o.key_size = static_cast<int>(key_size);
  o.val_size = static_cast<int>(val_size);
  o.key_space = key_space;
  o.prefix = prefix;
  o.fill = fill;
  o.fill_only = fill_only;
  o.seed = static_cast<uint64_t>(seed);
  for (auto [name, text, out] :
       {std::tuple{"duration", &duration, &o.duration}, std::tuple{"timeout", &timeout, &o.timeout},
        std::tuple{"connect-timeout", &connect_timeout, &o.connect_timeout},
        std::tuple{"watch-drain", &watch_drain, &o.watch_drain}}) {
    if (text->empty()) continue;
    if (!absl::ParseDuration(*text, out) || *out < absl::ZeroDuration()) {
      std::cerr << "kvbench: invalid duration \"" << *text << "\" for --" << name << "\n";
      return 2;
    }
  }
  if (absl::Status s = bench::ValidateLoadOptions(o); !s.ok()) {
    std::cerr << "kvbench: " << s.message() << "\n";
    return 2;
  }

  absl::StatusOr<bench::LoadResult> r = bench::RunLoad(o);
  if (!r.ok()) {
    if (json) {
      std::cout << "{" << JsonSettings(o) << ", \"failed\": " << JsonString(r.status().message())
                << "}\n";
    }
    std::cerr << "kvbench: " << r.status().message() << "\n";
    return 1;
  }
  if (json) {
    PrintJson(o, *r);
  } else {
    PrintText(o, *r);
  }
  return r->errors == 0 ? 0 : 1;
}
