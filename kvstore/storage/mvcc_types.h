// Plain value types of the MVCC key space, shared by the key codec and the store. They
// mirror etcd's mvccpb.KeyValue and mvccpb.Event field for field, so that the server layer
// converts them to the wire messages one to one; nothing here depends on protobuf or gRPC.
#ifndef KVSTORE_STORAGE_MVCC_TYPES_H_
#define KVSTORE_STORAGE_MVCC_TYPES_H_

#include <compare>
#include <cstdint>
#include <optional>
#include <string>

namespace mvcc {

// etcd's "no lease" id.
inline constexpr int64_t kNoLease = 0;

// A position in the history: `main` is the store revision of a write transaction and `sub`
// numbers the changes inside it, from 0.
struct Revision {
  int64_t main = 0;
  int64_t sub = 0;

  friend auto operator<=>(const Revision&, const Revision&) = default;
};

// One version of a key, as etcd's mvccpb.KeyValue.
struct KeyValue {
  std::string key;
  // Revision of the put that created this generation of the key (after its last delete).
  int64_t create_revision = 0;
  // Revision of the last change to the key.
  int64_t mod_revision = 0;
  // 1 for the put that created the key, then +1 on every put; a delete resets it.
  int64_t version = 0;
  std::string value;
  int64_t lease = kNoLease;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// One change of the history, as etcd's mvccpb.Event. A DELETE event's kv holds only the key
// and mod_revision = the revision of the delete; every other field is zero, as in etcd.
struct Event {
  enum class Type { kPut, kDelete };

  Type type = Type::kPut;
  KeyValue kv;
  // The version of the key just before this change, when asked for and still available.
  // From a write transaction, a put's may lack its value (mvcc::GroupOptions::prev_values).
  std::optional<KeyValue> prev_kv;

  friend bool operator==(const Event&, const Event&) = default;
};

}  // namespace mvcc

#endif  // KVSTORE_STORAGE_MVCC_TYPES_H_
