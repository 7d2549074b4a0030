#include "kvstore/server/peer_codec.h"

#include <gtest/gtest.h>

namespace kvstore::server {
namespace {

bool SameMessage(const raft::Message& a, const raft::Message& b) {
  return a.type == b.type && a.from == b.from && a.to == b.to && a.term == b.term &&
         a.log_term == b.log_term && a.index == b.index && a.entries == b.entries &&
         a.commit == b.commit && a.reject == b.reject && a.reject_hint == b.reject_hint &&
         a.context == b.context && a.transfer == b.transfer && a.snapshot == b.snapshot;
}

TEST(PeerCodecTest, EveryFieldSurvivesTheWire) {
  raft::Message m;
  m.type = raft::MessageType::kApp;
  m.from = 0x8e9e05c52164694dULL;
  m.to = 2;
  m.term = 7;
  m.log_term = 6;
  m.index = 41;
  m.entries = {raft::Entry{7, 42, raft::EntryType::kNormal, std::string("a\0b", 3)},
               raft::Entry{7, 43, raft::EntryType::kConfChange, "cc"}};
  m.commit = 40;
  m.reject = true;
  m.reject_hint = 39;
  m.context = 5;
  m.transfer = true;
  kvstore::raftpb::Message wire;
  ToProto(m, &wire);
  kvstore::raftpb::Message parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire.SerializeAsString()));
  absl::StatusOr<raft::Message> back = FromProto(parsed);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(SameMessage(*back, m));
}

TEST(PeerCodecTest, SnapshotCarriesMetaAndData) {
  raft::Message m;
  m.type = raft::MessageType::kSnap;
  m.snapshot.meta = raft::SnapshotMeta{10, 3, raft::ConfState{{1, 2}, {1, 2, 3}, {4}, true}};
  m.snapshot.data = "state";
  kvstore::raftpb::Message wire;
  ToProto(m, &wire);
  absl::StatusOr<raft::Message> back = FromProto(wire);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->snapshot, m.snapshot);
}

TEST(PeerCodecTest, UnknownTypesAreRefused) {
  kvstore::raftpb::Message wire;
  wire.set_type(99);
  EXPECT_TRUE(absl::IsInvalidArgument(FromProto(wire).status()));
  wire.set_type(static_cast<uint32_t>(raft::MessageType::kApp));
  wire.add_entries()->set_type(7);
  EXPECT_EQ(FromProto(wire).status().message(), "unknown raft entry type 7");
}

}  // namespace
}  // namespace kvstore::server
