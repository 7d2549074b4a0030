#include "kvstore/storage/key_codec.h"

namespace mvcc {
namespace {

constexpr char kEscape = '\x00';
constexpr char kEscapedZero = '\xff';
constexpr char kTerminator = '\x01';
// Replaces kTerminator to build a bound above every history key of one user key.
constexpr char kAfterTerminator = '\x02';

}  // namespace

void AppendEscapedKey(std::string_view key, std::string* out) {
  out->reserve(out->size() + key.size() + 2);
  for (char c : key) {
    out->push_back(c);
    if (c == kEscape) out->push_back(kEscapedZero);
  }
  out->push_back(kEscape);
  out->push_back(kTerminator);
}

bool ConsumeEscapedKey(std::string_view* in, std::string* key) {
  key->clear();
  size_t i = 0;
  while (i < in->size()) {
    const char c = (*in)[i];
    if (c != kEscape) {
      key->push_back(c);
      ++i;
      continue;
    }
    if (i + 1 >= in->size()) return false;
    const char next = (*in)[i + 1];
    if (next == kTerminator) {
      in->remove_prefix(i + 2);
      return true;
    }
    if (next != kEscapedZero) return false;
    key->push_back(kEscape);
    i += 2;
  }
  return false;
}

void AppendBigEndian64(uint64_t v, std::string* out) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xff));
  }
}

bool ConsumeBigEndian64(std::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  uint64_t r = 0;
  for (int i = 0; i < 8; ++i) r = (r << 8) | static_cast<uint8_t>((*in)[i]);
  in->remove_prefix(8);
  *v = r;
  return true;
}

std::string EncodeBigEndian64(uint64_t v) {
  std::string out;
  AppendBigEndian64(v, &out);
  return out;
}

void AppendRevision(Revision rev, std::string* out) {
  AppendBigEndian64(static_cast<uint64_t>(rev.main), out);
  AppendBigEndian64(static_cast<uint64_t>(rev.sub), out);
}

bool ConsumeRevision(std::string_view* in, Revision* rev) {
  uint64_t main = 0;
  uint64_t sub = 0;
  if (!ConsumeBigEndian64(in, &main) || !ConsumeBigEndian64(in, &sub)) return false;
  rev->main = static_cast<int64_t>(main);
  rev->sub = static_cast<int64_t>(sub);
  return true;
}

void AppendVarint64(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool ConsumeVarint64(std::string_view* in, uint64_t* v) {
  uint64_t r = 0;
  for (size_t i = 0; i < in->size() && i < 10; ++i) {
    const uint8_t byte = static_cast<uint8_t>((*in)[i]);
    r |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) {
      in->remove_prefix(i + 1);
      *v = r;
      return true;
    }
  }
  return false;
}

std::string HistoryKeyPrefix(std::string_view key) {
  std::string out(1, kHistoryPrefix);
  AppendEscapedKey(key, &out);
  return out;
}

std::string HistoryKey(std::string_view key, Revision rev) {
  std::string out = HistoryKeyPrefix(key);
  AppendRevision(rev, &out);
  return out;
}

std::string HistoryKeySuccessor(std::string_view key) {
  // ESC(key) ends in 0x00 0x01; 0x00 0x02 is above it and below the escape of any larger key,
  // which continues with a byte >= 0x01 or with 0x00 0xFF at that position.
  std::string out = HistoryKeyPrefix(key);
  out.back() = kAfterTerminator;
  return out;
}

std::string_view InsertHintPrefix(std::string_view encoded) {
  if (encoded.empty()) return encoded;
  if (encoded[0] == kRevisionPrefix) return encoded.substr(0, 1);
  if (encoded[0] == kHistoryPrefix) return {};
  return encoded;
}

bool ParseHistoryKey(std::string_view encoded, std::string* key, Revision* rev) {
  if (encoded.empty() || encoded[0] != kHistoryPrefix) return false;
  encoded.remove_prefix(1);
  if (!ConsumeEscapedKey(&encoded, key)) return false;
  return ConsumeRevision(&encoded, rev) && encoded.empty();
}

bool ParseHistoryKeyRevision(std::string_view encoded, Revision* rev) {
  // 'h', at least the two-byte terminator of ESC(key), then REV.
  if (encoded.size() < 1 + 2 + 16 || encoded[0] != kHistoryPrefix) return false;
  encoded.remove_prefix(encoded.size() - 16);
  return ConsumeRevision(&encoded, rev);
}

std::string RevisionKey(Revision rev) {
  std::string out(1, kRevisionPrefix);
  AppendRevision(rev, &out);
  return out;
}

bool ParseRevisionKey(std::string_view encoded, Revision* rev) {
  if (encoded.empty() || encoded[0] != kRevisionPrefix) return false;
  encoded.remove_prefix(1);
  return ConsumeRevision(&encoded, rev) && encoded.empty();
}

std::string LeaseIndexKeyPrefix(int64_t lease) {
  std::string out(1, kLeasePrefix);
  AppendBigEndian64(static_cast<uint64_t>(lease), &out);
  return out;
}

std::string LeaseIndexKey(int64_t lease, std::string_view key) {
  std::string out = LeaseIndexKeyPrefix(lease);
  out.append(key);
  return out;
}

bool ParseLeaseIndexKey(std::string_view encoded, int64_t* lease, std::string* key) {
  if (encoded.empty() || encoded[0] != kLeasePrefix) return false;
  encoded.remove_prefix(1);
  uint64_t id = 0;
  if (!ConsumeBigEndian64(&encoded, &id)) return false;
  *lease = static_cast<int64_t>(id);
  key->assign(encoded);
  return true;
}

std::string LeaseRecordKey(int64_t lease) {
  std::string out(1, kLeaseRecordPrefix);
  AppendBigEndian64(static_cast<uint64_t>(lease), &out);
  return out;
}

bool ParseLeaseRecordKey(std::string_view encoded, int64_t* lease) {
  if (encoded.empty() || encoded[0] != kLeaseRecordPrefix) return false;
  encoded.remove_prefix(1);
  uint64_t id = 0;
  if (!ConsumeBigEndian64(&encoded, &id) || !encoded.empty()) return false;
  *lease = static_cast<int64_t>(id);
  return true;
}

std::string MetaKey(std::string_view name) {
  std::string out(1, kMetaPrefix);
  out.append(name);
  return out;
}

std::string KeySpaceEnd(char prefix) { return std::string(1, static_cast<char>(prefix + 1)); }

std::string EncodeKeyValueBody(const KeyValue& kv) {
  std::string out;
  out.reserve(kv.value.size() + 16);
  AppendVarint64(static_cast<uint64_t>(kv.create_revision), &out);
  AppendVarint64(static_cast<uint64_t>(kv.mod_revision), &out);
  AppendVarint64(static_cast<uint64_t>(kv.version), &out);
  AppendVarint64(static_cast<uint64_t>(kv.lease), &out);
  out.append(kv.value);
  return out;
}

bool DecodeKeyValueBody(std::string_view in, bool keys_only, KeyValue* kv) {
  uint64_t create = 0;
  uint64_t mod = 0;
  uint64_t version = 0;
  uint64_t lease = 0;
  if (!ConsumeVarint64(&in, &create) || !ConsumeVarint64(&in, &mod) ||
      !ConsumeVarint64(&in, &version) || !ConsumeVarint64(&in, &lease)) {
    return false;
  }
  kv->create_revision = static_cast<int64_t>(create);
  kv->mod_revision = static_cast<int64_t>(mod);
  kv->version = static_cast<int64_t>(version);
  kv->lease = static_cast<int64_t>(lease);
  if (keys_only) {
    kv->value.clear();
  } else {
    kv->value.assign(in);
  }
  return true;
}

std::string EncodeHistoryValue(ChangeKind kind, const KeyValue& kv) {
  if (kind == ChangeKind::kDelete) return std::string(1, static_cast<char>(kind));
  std::string out(1, static_cast<char>(kind));
  out.append(EncodeKeyValueBody(kv));
  return out;
}

bool DecodeHistoryValue(std::string_view in, bool keys_only, ChangeKind* kind, KeyValue* kv) {
  if (in.empty()) return false;
  switch (in[0]) {
    case static_cast<char>(ChangeKind::kDelete):
      *kind = ChangeKind::kDelete;
      return in.size() == 1;
    case static_cast<char>(ChangeKind::kPut):
      *kind = ChangeKind::kPut;
      return DecodeKeyValueBody(in.substr(1), keys_only, kv);
    default:
      return false;
  }
}

std::string EncodeRevisionValue(ChangeKind kind, std::string_view key) {
  std::string out;
  out.reserve(key.size() + 1);
  out.push_back(static_cast<char>(kind));
  out.append(key);
  return out;
}

bool DecodeRevisionValue(std::string_view in, ChangeKind* kind, std::string* key) {
  if (in.empty()) return false;
  if (in[0] == static_cast<char>(ChangeKind::kPut)) {
    *kind = ChangeKind::kPut;
  } else if (in[0] == static_cast<char>(ChangeKind::kDelete)) {
    *kind = ChangeKind::kDelete;
  } else {
    return false;
  }
  key->assign(in.substr(1));
  return true;
}

}  // namespace mvcc
