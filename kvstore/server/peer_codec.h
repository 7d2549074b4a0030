// Converts the Raft core's messages to and from the peer protocol (proto/raft/raft_peer.proto).
// A message from the wire is checked before it reaches the core: an unknown message or
// entry type is an error, never a guess.
#ifndef KVSTORE_SERVER_PEER_CODEC_H_
#define KVSTORE_SERVER_PEER_CODEC_H_

#include "absl/status/statusor.h"
#include "kvstore/raft/types.h"
#include "raft/raft_peer.pb.h"

namespace kvstore::server {

void ToProto(const raft::Message& m, kvstore::raftpb::Message* out);
absl::StatusOr<raft::Message> FromProto(const kvstore::raftpb::Message& m);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_PEER_CODEC_H_
