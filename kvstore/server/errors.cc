#include "kvstore/server/errors.h"

#include "kvstore/storage/mvcc_store.h"

namespace kvstore::server {

absl::Status EmptyKeyError() {
  return absl::InvalidArgumentError("etcdserver: key is not provided");
}
absl::Status KeyNotFoundError() { return absl::InvalidArgumentError("etcdserver: key not found"); }
absl::Status ValueProvidedError() {
  return absl::InvalidArgumentError("etcdserver: value is provided");
}
absl::Status LeaseProvidedError() {
  return absl::InvalidArgumentError("etcdserver: lease is provided");
}
absl::Status TooManyOpsError() {
  return absl::InvalidArgumentError("etcdserver: too many operations in txn request");
}
absl::Status DuplicateKeyError() {
  return absl::InvalidArgumentError("etcdserver: duplicate key given in txn request");
}
absl::Status RequestTooLargeError() {
  return absl::InvalidArgumentError("etcdserver: request is too large");
}
absl::Status CompactedRevisionError() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision has been compacted");
}
absl::Status FutureRevisionError() {
  return absl::OutOfRangeError("etcdserver: mvcc: required revision is a future revision");
}
absl::Status LeaseNotFoundError() {
  return absl::NotFoundError("etcdserver: requested lease not found");
}
absl::Status LeaseExistsError() {
  return absl::FailedPreconditionError("etcdserver: lease already exists");
}
absl::Status LeaseTtlTooLargeError() {
  return absl::OutOfRangeError("etcdserver: too large lease TTL");
}
absl::Status TimeoutError() { return absl::UnavailableError("etcdserver: request timed out"); }
absl::Status MemberNotFoundError() { return absl::NotFoundError("etcdserver: member not found"); }
absl::Status BadLeaderTransfereeError() {
  return absl::FailedPreconditionError("etcdserver: bad leader transferee");
}
absl::Status NotLeaderError() { return absl::FailedPreconditionError("etcdserver: not leader"); }
absl::Status LeaderTransferTimeoutError() {
  return absl::UnavailableError("etcdserver: request timed out, leader transfer took too long");
}
absl::Status NoSpaceError() {
  return absl::ResourceExhaustedError("etcdserver: mvcc: database space exceeded");
}
absl::Status CorruptError() { return absl::DataLossError("etcdserver: corrupt cluster"); }
absl::Status MemberBadUrlsError() {
  return absl::InvalidArgumentError("etcdserver: given member URLs are invalid");
}
absl::Status PeerUrlExistsError() {
  return absl::FailedPreconditionError("etcdserver: Peer URLs already exists");
}
absl::Status MemberNotLearnerError() {
  return absl::FailedPreconditionError("etcdserver: can only promote a learner member");
}
absl::Status NotEnoughStartedMembersError() {
  return absl::FailedPreconditionError(
      "etcdserver: re-configuration failed due to not enough started members");
}
absl::Status UnhealthyClusterError() {
  return absl::UnavailableError("etcdserver: unhealthy cluster");
}
absl::Status TooManyLearnersError() {
  return absl::FailedPreconditionError("etcdserver: too many learner members in cluster");
}
absl::Status LearnerNotReadyError() {
  return absl::FailedPreconditionError(
      "etcdserver: can only promote a learner member which is in sync with leader");
}
absl::Status NotSupportedForLearnerError() {
  return absl::UnavailableError("etcdserver: rpc not supported for learner");
}
absl::Status BadAlarmRequestError() {
  return absl::InvalidArgumentError("etcdserver: invalid alarm request");
}

absl::Status FromStoreError(const absl::Status& s) {
  if (mvcc::IsCompactedError(s)) return CompactedRevisionError();
  if (mvcc::IsFutureRevisionError(s)) return FutureRevisionError();
  return s;
}

}  // namespace kvstore::server
