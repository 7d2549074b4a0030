// What every etcd API service does the same way: refuse a learner's clients as etcd does,
// bound a call by the client's deadline and the server's request timeout, and answer a
// write with the applied result.
#ifndef KVSTORE_SERVER_SERVICE_UTIL_H_
#define KVSTORE_SERVER_SERVICE_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/grpc_status.h"
#include "kvstore/server/errors.h"
#include "kvstore/server/kv_server.h"

namespace kvstore::server {

// etcd 3.4's gRPC interceptors: a learner answers its clients only Maintenance.Status and
// serializable Range, and refuses every other call and every stream, before anything else
// (validation included), with NotSupportedForLearnerError(). Each handler of a call a
// learner must refuse starts with this (KV.Range only when it is linearizable). Asked at
// each call, so that a promoted learner serves at once.
inline grpc::Status RefuseIfLearner(const KvServer* server) {
  if (!server->IsLearner()) return grpc::Status::OK;
  return common::ToGrpcStatus(NotSupportedForLearnerError());
}

// The deadline for a request: the client's, but at most `timeout` from now.
inline absl::Time RequestDeadline(const grpc::ServerContextBase* ctx, absl::Duration timeout) {
  return std::min(absl::FromChrono(ctx->deadline()), absl::Now() + timeout);
}

// Moves the response of type T out of a write's outcome into `resp`, with its header filled.
template <typename T>
grpc::Status AnswerWrite(const KvServer* server, absl::StatusOr<ApplyResult> applied, T* resp) {
  if (!applied.ok()) return common::ToGrpcStatus(applied.status());
  if (!applied->status.ok()) return common::ToGrpcStatus(applied->status);
  T* out = std::get_if<T>(&applied->response);
  if (out == nullptr) return grpc::Status(grpc::StatusCode::INTERNAL, "unexpected apply result");
  *resp = std::move(*out);
  server->FillHeader(resp->mutable_header());
  return grpc::Status::OK;
}

// Proposes `r`, waits until it is applied (or `deadline`), and answers as AnswerWrite.
template <typename T>
grpc::Status WriteAndAnswer(KvServer* server, absl::Time deadline,
                            kvstore::internal::InternalRaftRequest r, T* resp) {
  return AnswerWrite(server, server->Write(std::move(r), deadline), resp);
}

// Proposes `r` and finishes the call with the answer once it is applied (or `deadline`),
// without holding a thread while it waits.
template <typename T>
void WriteAndFinish(KvServer* server, grpc::ServerUnaryReactor* reactor, absl::Time deadline,
                    kvstore::internal::InternalRaftRequest r, T* resp) {
  server->WriteAsync(std::move(r), deadline,
                     [server, reactor, resp](absl::StatusOr<ApplyResult> applied) {
                       reactor->Finish(AnswerWrite(server, std::move(applied), resp));
                     });
}

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_SERVICE_UTIL_H_
