// Settings every gRPC server of the project shares.
#ifndef COMMON_GRPC_SERVER_H_
#define COMMON_GRPC_SERVER_H_

#include <grpcpp/server_builder.h>

namespace common {

// At most one idle thread waits for the server's synchronous methods (gRPC's default is
// two). With gRPC's default poller (epoll1) every thread waiting on a completion queue takes
// turns at the one epoll set and hands what it finds to the thread that owns it, so each
// idle thread adds wake-ups and context switches to every call, the callback methods' too:
// one fewer cut a three-member cluster's CPU per put at 256 clients by about 5% and raised
// single-client puts per second by about 6% (docs/benchmarks.md, run R). A synchronous call
// still gets a thread of its own at once; one that ends lets its thread go when another
// waits already.
inline void UseOneIdleSyncThread(grpc::ServerBuilder* builder) {
  builder->SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, 1);
}

}  // namespace common

#endif  // COMMON_GRPC_SERVER_H_
