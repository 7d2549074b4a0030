// Settings every gRPC server of the project shares.
#ifndef COMMON_GRPC_SERVER_H_
#define COMMON_GRPC_SERVER_H_

#include <grpcpp/completion_queue.h>
#include <grpcpp/server_builder.h>

#include <cstdlib>
#include <memory>
#include <string_view>

namespace common {

// Keeps a server's synchronous methods' idle threads out of gRPC's polling. With gRPC's
// default poller on Linux (epoll1) every thread waiting on a polling completion queue takes
// turns at the process's one epoll set and hands what it finds to the thread whose queue it
// is, so each idle thread adds wake-ups and context switches to every call, the callback
// methods' (which carry the load) too. A server that also has a completion queue of its own
// for asynchronous calls (a "hybrid" server) gives its synchronous threads queues that do
// not poll: they sleep until a call for them arrives, found by the threads that do poll (the
// callback methods' and the client channels'). This object is that queue: no asynchronous
// method is registered, so nothing ever arrives on it.
//
// That relies on epoll1's one set: with another poller (GRPC_POLL_STRATEGY=poll) each queue
// polls only the connections it was given, and those given to a queue nobody reads would
// never be served. Then only the second measure applies: at most one idle thread waits for
// synchronous calls (gRPC's default is two). Either way a synchronous call gets a thread at
// once, and one that ends lets its thread go when another waits already.
//
// Make it before BuildAndStart() and destroy it after the server has shut down (declare it
// before the server). See docs/benchmarks.md (run R) for what each measure saved.
class QuietSyncThreads {
 public:
  explicit QuietSyncThreads(grpc::ServerBuilder* builder) {
    builder->SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
    if (PollsOneEpollSet()) queue_ = builder->AddCompletionQueue();
  }
  QuietSyncThreads(const QuietSyncThreads&) = delete;
  QuietSyncThreads& operator=(const QuietSyncThreads&) = delete;
  ~QuietSyncThreads() {
    if (queue_ == nullptr) return;
    queue_->Shutdown();
    void* tag;
    bool ok;
    while (queue_->Next(&tag, &ok)) {
    }
  }

  // Whether gRPC polls every connection from one epoll set: its poller is epoll1, its
  // choice on Linux unless GRPC_POLL_STRATEGY names another first.
  static bool PollsOneEpollSet() {
    const char* env = std::getenv("GRPC_POLL_STRATEGY");
    if (env == nullptr) return true;
    std::string_view first(env);
    first = first.substr(0, first.find(','));
    return first.empty() || first == "epoll1" || first == "all";
  }

 private:
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
};

}  // namespace common

#endif  // COMMON_GRPC_SERVER_H_
