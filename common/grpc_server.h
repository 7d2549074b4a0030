// Settings every gRPC server of the project shares.
#ifndef COMMON_GRPC_SERVER_H_
#define COMMON_GRPC_SERVER_H_

#include <grpcpp/completion_queue.h>
#include <grpcpp/server_builder.h>

#include <memory>

namespace common {

// Keeps a server's synchronous methods' idle threads out of gRPC's polling. With gRPC's
// default poller (epoll1) every thread waiting on a polling completion queue takes turns at
// the process's one epoll set and hands what it finds to the thread whose queue it is, so
// each idle thread adds wake-ups and context switches to every call, the callback methods'
// (which carry the load) too. A server that also has a completion queue of its own for
// asynchronous calls (a "hybrid" server) gives its synchronous threads queues that do not
// poll: they sleep until a call for them arrives, found by the threads that do poll (the
// callback methods' and the client channels'). This object is that queue: no asynchronous
// method is registered, so nothing ever arrives on it.
//
// Make it before BuildAndStart() and destroy it after the server has shut down (declare it
// before the server). At most one idle thread then waits for synchronous calls (gRPC's
// default is two): a call still gets a thread at once, one that ends lets its thread go
// when another waits already. See docs/benchmarks.md (run R) for what each saved.
class QuietSyncThreads {
 public:
  explicit QuietSyncThreads(grpc::ServerBuilder* builder) : queue_(builder->AddCompletionQueue()) {
    builder->SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
  }
  QuietSyncThreads(const QuietSyncThreads&) = delete;
  QuietSyncThreads& operator=(const QuietSyncThreads&) = delete;
  ~QuietSyncThreads() {
    queue_->Shutdown();
    void* tag;
    bool ok;
    while (queue_->Next(&tag, &ok)) {
    }
  }

 private:
  std::unique_ptr<grpc::ServerCompletionQueue> queue_;
};

}  // namespace common

#endif  // COMMON_GRPC_SERVER_H_
