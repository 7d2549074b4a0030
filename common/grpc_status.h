// The one place where absl::Status becomes grpc::Status (the codes are the same numbers;
// the message passes unchanged, so etcd's error strings reach clients intact).
#ifndef COMMON_GRPC_STATUS_H_
#define COMMON_GRPC_STATUS_H_

#include <grpcpp/support/status.h>

#include <string>

#include "absl/status/status.h"

namespace common {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace common

#endif  // COMMON_GRPC_STATUS_H_
