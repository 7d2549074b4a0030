#include "kvstore/storage/raft_codec.h"

#include <array>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kvstore::storage {
namespace {

// --- CRC32C, slicing by 8 ---------------------------------------------------------------

constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

using Crc32cTables = std::array<std::array<uint32_t, 256>, 8>;

// tables[0] is the classic byte-at-a-time table; tables[k][b] is the CRC of byte b followed
// by k zero bytes, which lets the loop below fold 8 input bytes per step.
constexpr Crc32cTables MakeCrc32cTables() {
  Crc32cTables tables{};
  for (uint32_t b = 0; b < 256; ++b) {
    uint32_t c = b;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1) ? (c >> 1) ^ kCastagnoliReflected : c >> 1;
    tables[0][b] = c;
  }
  for (uint32_t b = 0; b < 256; ++b) {
    for (size_t k = 1; k < 8; ++k) {
      const uint32_t prev = tables[k - 1][b];
      tables[k][b] = (prev >> 8) ^ tables[0][prev & 0xff];
    }
  }
  return tables;
}

constexpr Crc32cTables kCrc32cTables = MakeCrc32cTables();

// --- Checksummed values -----------------------------------------------------------------

constexpr size_t kChecksumSize = 4;

uint32_t ValueChecksum(absl::string_view key, absl::string_view body) {
  return Crc32cExtend(Crc32c(key), body);
}

// Appends the checksum of key and body to `body`, making it a value.
std::string Seal(absl::string_view key, std::string body) {
  const uint32_t crc = ValueChecksum(key, body);
  PutFixed32(&body, crc);
  return body;
}

absl::Status Corrupt(absl::string_view key, absl::string_view why) {
  return absl::DataLossError(
      absl::StrCat("raft log store: corrupt value at ", DescribeKey(key), ": ", why));
}

// The body of a value whose checksum holds.
absl::StatusOr<absl::string_view> Unseal(absl::string_view key, absl::string_view value) {
  if (value.size() < kChecksumSize) return Corrupt(key, "shorter than its checksum");
  const absl::string_view body = value.substr(0, value.size() - kChecksumSize);
  const uint32_t stored = DecodeFixed32(value.data() + body.size());
  if (stored != ValueChecksum(key, body)) return Corrupt(key, "checksum mismatch");
  return body;
}

bool GetByte(absl::string_view* in, uint8_t* b) {
  if (in->empty()) return false;
  *b = static_cast<uint8_t>(in->front());
  in->remove_prefix(1);
  return true;
}

void PutIdList(std::string* out, const std::vector<uint64_t>& ids) {
  PutVarint64(out, ids.size());
  for (uint64_t id : ids) PutVarint64(out, id);
}

bool GetIdList(absl::string_view* in, std::vector<uint64_t>* ids) {
  uint64_t n;
  // Each id takes at least one byte: a count beyond the bytes left is corruption, and
  // must not turn into a huge allocation.
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  ids->resize(n);
  for (uint64_t& id : *ids) {
    if (!GetVarint64(in, &id)) return false;
  }
  return true;
}

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, absl::string_view data) {
  const Crc32cTables& t = kCrc32cTables;
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  size_t n = data.size();
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = DecodeFixed32(reinterpret_cast<const char*>(p)) ^ c;
    const uint32_t hi = DecodeFixed32(reinterpret_cast<const char*>(p + 4));
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
        t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  for (; n > 0; --n, ++p) c = t[0][(c ^ *p) & 0xff] ^ (c >> 8);
  return ~c;
}

void PutFixed32(std::string* out, uint32_t v) {
  for (int shift = 0; shift < 32; shift += 8) out->push_back(static_cast<char>(v >> shift));
}

uint32_t DecodeFixed32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | uint32_t{u[1]} << 8 | uint32_t{u[2]} << 16 | uint32_t{u[3]} << 24;
}

void PutVarint64(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint64(absl::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    const uint64_t byte = static_cast<uint8_t>((*in)[i]);
    // The tenth byte holds bit 63 only.
    if (i == 9 && byte > 1) return false;
    result |= (byte & 0x7f) << (7 * i);
    if (byte < 0x80) {
      in->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

std::string EntryKey(uint64_t index) {
  std::string key(kEntryKeySize, '\0');
  key[0] = kEntryKeyPrefix;
  for (size_t i = 0; i < 8; ++i) key[8 - i] = static_cast<char>(index >> (8 * i));
  return key;
}

std::optional<uint64_t> ParseEntryKey(absl::string_view key) {
  if (key.size() != kEntryKeySize || key[0] != kEntryKeyPrefix) return std::nullopt;
  uint64_t index = 0;
  for (size_t i = 1; i < kEntryKeySize; ++i) index = index << 8 | static_cast<uint8_t>(key[i]);
  return index;
}

std::string DescribeKey(absl::string_view key) {
  if (std::optional<uint64_t> index = ParseEntryKey(key)) return absl::StrCat("e#", *index);
  return absl::CHexEscape(key);
}

std::string EncodeEntryValue(absl::string_view key, const raft::Entry& e) {
  std::string body;
  body.reserve(e.data.size() + 16);
  PutVarint64(&body, e.term);
  body.push_back(static_cast<char>(e.type));
  body += e.data;
  return Seal(key, std::move(body));
}

absl::StatusOr<raft::Entry> DecodeEntryValue(absl::string_view key, absl::string_view value) {
  const std::optional<uint64_t> index = ParseEntryKey(key);
  if (!index) return Corrupt(key, "not an entry key");
  absl::StatusOr<absl::string_view> body = Unseal(key, value);
  if (!body.ok()) return body.status();
  absl::string_view in = *body;
  raft::Entry e;
  e.index = *index;
  uint8_t type;
  if (!GetVarint64(&in, &e.term) || !GetByte(&in, &type)) return Corrupt(key, "truncated entry");
  if (type != static_cast<uint8_t>(raft::EntryType::kNormal) &&
      type != static_cast<uint8_t>(raft::EntryType::kConfChange)) {
    return Corrupt(key, absl::StrCat("unknown entry type ", type));
  }
  e.type = static_cast<raft::EntryType>(type);
  e.data.assign(in.data(), in.size());
  return e;
}

std::string EncodeHardState(absl::string_view key, const raft::HardState& hs) {
  std::string body;
  PutVarint64(&body, hs.term);
  PutVarint64(&body, hs.vote);
  PutVarint64(&body, hs.commit);
  return Seal(key, std::move(body));
}

absl::StatusOr<raft::HardState> DecodeHardState(absl::string_view key, absl::string_view value) {
  absl::StatusOr<absl::string_view> body = Unseal(key, value);
  if (!body.ok()) return body.status();
  absl::string_view in = *body;
  raft::HardState hs;
  if (!GetVarint64(&in, &hs.term) || !GetVarint64(&in, &hs.vote) || !GetVarint64(&in, &hs.commit) ||
      !in.empty()) {
    return Corrupt(key, "malformed hard state");
  }
  return hs;
}

std::string EncodeLogPosition(absl::string_view key, const LogPosition& p) {
  std::string body;
  PutVarint64(&body, p.index);
  PutVarint64(&body, p.term);
  return Seal(key, std::move(body));
}

absl::StatusOr<LogPosition> DecodeLogPosition(absl::string_view key, absl::string_view value) {
  absl::StatusOr<absl::string_view> body = Unseal(key, value);
  if (!body.ok()) return body.status();
  absl::string_view in = *body;
  LogPosition p;
  if (!GetVarint64(&in, &p.index) || !GetVarint64(&in, &p.term) || !in.empty()) {
    return Corrupt(key, "malformed log position");
  }
  return p;
}

std::string EncodeSnapshotMeta(absl::string_view key, const raft::SnapshotMeta& m) {
  std::string body;
  PutVarint64(&body, m.index);
  PutVarint64(&body, m.term);
  PutIdList(&body, m.conf_state.voters);
  PutIdList(&body, m.conf_state.voters_outgoing);
  PutIdList(&body, m.conf_state.learners);
  body.push_back(m.conf_state.auto_leave ? 1 : 0);
  return Seal(key, std::move(body));
}

absl::StatusOr<raft::SnapshotMeta> DecodeSnapshotMeta(absl::string_view key,
                                                      absl::string_view value) {
  absl::StatusOr<absl::string_view> body = Unseal(key, value);
  if (!body.ok()) return body.status();
  absl::string_view in = *body;
  raft::SnapshotMeta m;
  uint8_t auto_leave;
  if (!GetVarint64(&in, &m.index) || !GetVarint64(&in, &m.term) ||
      !GetIdList(&in, &m.conf_state.voters) || !GetIdList(&in, &m.conf_state.voters_outgoing) ||
      !GetIdList(&in, &m.conf_state.learners) || !GetByte(&in, &auto_leave) || auto_leave > 1 ||
      !in.empty()) {
    return Corrupt(key, "malformed snapshot metadata");
  }
  m.conf_state.auto_leave = auto_leave == 1;
  return m;
}

std::string EncodeCheckpoint(absl::string_view key, const WalCheckpoint& c) {
  std::string body;
  PutVarint64(&body, c.compacted.index);
  PutVarint64(&body, c.compacted.term);
  PutVarint64(&body, c.last_index);
  return Seal(key, std::move(body));
}

absl::StatusOr<WalCheckpoint> DecodeCheckpoint(absl::string_view key, absl::string_view value) {
  absl::StatusOr<absl::string_view> body = Unseal(key, value);
  if (!body.ok()) return body.status();
  absl::string_view in = *body;
  WalCheckpoint c;
  if (!GetVarint64(&in, &c.compacted.index) || !GetVarint64(&in, &c.compacted.term) ||
      !GetVarint64(&in, &c.last_index) || !in.empty() || c.last_index < c.compacted.index) {
    return Corrupt(key, "malformed checkpoint");
  }
  return c;
}

std::string EncodeBytes(absl::string_view key, absl::string_view bytes) {
  return Seal(key, std::string(bytes));
}

absl::StatusOr<std::string> DecodeBytes(absl::string_view key, absl::string_view value) {
  absl::StatusOr<absl::string_view> body = Unseal(key, value);
  if (!body.ok()) return body.status();
  return std::string(*body);
}

void AppendItem(std::string* out, absl::string_view key, absl::string_view value) {
  PutVarint64(out, key.size());
  out->append(key.data(), key.size());
  PutVarint64(out, value.size());
  out->append(value.data(), value.size());
}

bool NextItem(absl::string_view* in, absl::string_view* key, absl::string_view* value) {
  uint64_t n;
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  *key = in->substr(0, n);
  in->remove_prefix(n);
  if (!GetVarint64(in, &n) || n > in->size()) return false;
  *value = in->substr(0, n);
  in->remove_prefix(n);
  return true;
}

}  // namespace kvstore::storage
