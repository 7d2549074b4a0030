// How the MVCC key space is laid out in RocksDB (one RocksDB instance per MvccStore, default
// column family). Every RocksDB key starts with one byte that names its key space:
//
//   key                             value                    what it is
//   'g' BE64(lease id)              varint ttl               lease records (the lease layer's
//                                                            grants; no revision of their own)
//   'h' ESC(key) REV(main, sub)     'p' KV-BODY  |  'd'      history: every version of every key,
//                                                            'd' = tombstone of a delete
//   'l' BE64(lease) key             (empty)                  lease index: keys attached to a lease
//   'm' name                        see below                store metadata
//   'r' REV(main, sub)              'p' key  |  'd' key      revision index: every change, in
//                                                            revision order
//
//   REV(main, sub) = BE64(main) BE64(sub): byte order is revision order.
//   ESC(key)       = key with every 0x00 byte written as 0x00 0xFF, then the terminator 0x00 0x01.
//                    For any byte strings a < b (bytewise) ESC(a) < ESC(b), and no ESC(a) is a
//                    prefix of another, so ESC(a) + anything < ESC(b) + anything: history
//                    sorts by user key first, then revision, for every key including ones that
//                    hold 0x00 or 0xFF bytes or are prefixes of each other ("a" < "a\0" < "a\x01").
//   KV-BODY        = varint create_revision, varint mod_revision, varint version,
//                    varint lease (as uint64), then the value bytes up to the end.
//   BE64           = 8 bytes big-endian.
//
// Why each key space exists:
//   history  The version of a key at revision R, the current one included, is one SeekForPrev
//            to 'h' ESC(key) REV(R, max): reads never scan a key's history linearly. The key
//            is escaped because a revision follows it. There is no separate space for the
//            latest versions (format mvcc-v1 had one, 'k' key -> KV-BODY): a put would write
//            its value twice, and each write into the memtable's skip list at a random spot
//            costs a put as much as the rest of applying it. What a put needs to know of the
//            version it replaces is in memory (MvccStore's live keys).
//   revision Events(start, end) is one Seek to 'r' REV(start, 0) and then Next over exactly the
//            changes in [start, end), in order; unrelated keys' older history is never touched.
//            The value carries the change kind, so DELETE events and compaction need no lookup.
//   lease    KeysWithLease(id) is a prefix scan; the whole space lists every (lease, key) pair.
//   grants   Lease grants and revokes commit in the same batch as the applied index, so after a
//            crash the leases, their keys and the applied index agree.
//   meta     'm' "format" -> "mvcc-v2" (marks the directory as an MVCC store; a mvcc-v1
//            store is upgraded when opened, by deleting its 'k' space);
//            'm' "revision" -> BE64 current store revision (absent on a new store = 1);
//            'm' "applied_index" -> BE64 Raft index last applied (opaque to the store);
//            'm' "compact_scheduled" / "compact_finished" -> BE64 compaction revisions;
//            'm' "alarms" -> (varint member, varint type)* the active alarms.
//
// Every write transaction updates history, revision index, lease index and meta in
// one rocksdb::WriteBatch, so the key spaces always agree.
//
// Thread-safety: everything here is a pure function.
#ifndef KVSTORE_STORAGE_KEY_CODEC_H_
#define KVSTORE_STORAGE_KEY_CODEC_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "kvstore/storage/mvcc_types.h"

namespace mvcc {

inline constexpr char kLeaseRecordPrefix = 'g';
inline constexpr char kHistoryPrefix = 'h';
inline constexpr char kLeasePrefix = 'l';
inline constexpr char kMetaPrefix = 'm';
inline constexpr char kRevisionPrefix = 'r';

// Names of the meta keys.
inline constexpr std::string_view kMetaFormat = "format";
inline constexpr std::string_view kMetaRevision = "revision";
inline constexpr std::string_view kMetaAppliedIndex = "applied_index";
inline constexpr std::string_view kMetaCompactScheduled = "compact_scheduled";
inline constexpr std::string_view kMetaCompactFinished = "compact_finished";
inline constexpr std::string_view kMetaAlarms = "alarms";
inline constexpr std::string_view kFormatVersion = "mvcc-v2";
// The format before, and its key space of latest versions ('k' key -> KV-BODY), which is all
// that a mvcc-v2 store does not have.
inline constexpr std::string_view kFormatVersionV1 = "mvcc-v1";
inline constexpr char kV1LatestPrefix = 'k';

// What a history or revision-index entry records.
enum class ChangeKind : char { kPut = 'p', kDelete = 'd' };

// --- Building blocks ---------------------------------------------------------------------

// Appends ESC(key) (see the top of this file).
void AppendEscapedKey(std::string_view key, std::string* out);
// Reads ESC(key) from the front of *in and advances *in past it. False if malformed.
bool ConsumeEscapedKey(std::string_view* in, std::string* key);

void AppendBigEndian64(uint64_t v, std::string* out);
bool ConsumeBigEndian64(std::string_view* in, uint64_t* v);
std::string EncodeBigEndian64(uint64_t v);

// Appends REV(main, sub). Revisions are never negative.
void AppendRevision(Revision rev, std::string* out);
bool ConsumeRevision(std::string_view* in, Revision* rev);

void AppendVarint64(uint64_t v, std::string* out);
bool ConsumeVarint64(std::string_view* in, uint64_t* v);

// --- RocksDB keys ------------------------------------------------------------------------

// 'h' ESC(key): every history entry of `key`, and only those, start with it.
std::string HistoryKeyPrefix(std::string_view key);

// The part of a RocksDB key by which the memtable remembers where it last inserted (RocksDB's
// insert hints): a write mostly lands right next to the previous write with the same part,
// found without a search from the top of the skip list. The revision index's is its prefix
// byte (revisions only grow); a meta, lease or lease-index key's is the whole key (its new
// version goes just before the last one, as RocksDB orders versions of one key). A history
// key has none (empty): a put mostly writes a key whose last version went into the memtable
// many thousands of inserts ago, if at all, so a hint per key's history rarely starts the
// search anywhere useful, and its table (one entry per key written) cost more than it saved.
std::string_view InsertHintPrefix(std::string_view encoded);
std::string HistoryKey(std::string_view key, Revision rev);
// The smallest byte string greater than every history key of `key` and not greater than any
// history key of a larger user key: where to seek to skip the rest of `key`'s history.
std::string HistoryKeySuccessor(std::string_view key);
bool ParseHistoryKey(std::string_view encoded, std::string* key, Revision* rev);
// Only the revision of a history key (its last 16 bytes), without decoding the user key.
bool ParseHistoryKeyRevision(std::string_view encoded, Revision* rev);

std::string RevisionKey(Revision rev);
bool ParseRevisionKey(std::string_view encoded, Revision* rev);

std::string LeaseIndexKeyPrefix(int64_t lease);
std::string LeaseIndexKey(int64_t lease, std::string_view key);
bool ParseLeaseIndexKey(std::string_view encoded, int64_t* lease, std::string* key);

std::string LeaseRecordKey(int64_t lease);
bool ParseLeaseRecordKey(std::string_view encoded, int64_t* lease);

std::string MetaKey(std::string_view name);

// The first byte string after every RocksDB key of the key space `prefix`.
std::string KeySpaceEnd(char prefix);

// --- RocksDB values ----------------------------------------------------------------------

// KV-BODY of `kv` (its key is not stored: it is in the RocksDB key).
std::string EncodeKeyValueBody(const KeyValue& kv);
// Fills every field of *kv but the key. With `keys_only`, leaves the value empty.
bool DecodeKeyValueBody(std::string_view in, bool keys_only, KeyValue* kv);

// A history value: 'p' KV-BODY for a put, 'd' for a tombstone (`kv` is ignored).
std::string EncodeHistoryValue(ChangeKind kind, const KeyValue& kv);
// Fills *kind and, for a put, every field of *kv but the key.
bool DecodeHistoryValue(std::string_view in, bool keys_only, ChangeKind* kind, KeyValue* kv);

// A revision-index value: the change kind and the user key.
std::string EncodeRevisionValue(ChangeKind kind, std::string_view key);
bool DecodeRevisionValue(std::string_view in, ChangeKind* kind, std::string* key);

}  // namespace mvcc

#endif  // KVSTORE_STORAGE_KEY_CODEC_H_
