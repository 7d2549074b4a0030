// etcd's client-facing errors: the gRPC code and the exact message string, which clients
// match on (etcdctl and clientv3 turn these strings back into typed errors). Every error a
// client can see from the kvstore is made here, so the strings live in one place.
#ifndef KVSTORE_SERVER_ERRORS_H_
#define KVSTORE_SERVER_ERRORS_H_

#include "absl/status/status.h"

namespace kvstore::server {

absl::Status EmptyKeyError();             // InvalidArgument
absl::Status KeyNotFoundError();          // InvalidArgument
absl::Status ValueProvidedError();        // InvalidArgument
absl::Status LeaseProvidedError();        // InvalidArgument
absl::Status TooManyOpsError();           // InvalidArgument
absl::Status DuplicateKeyError();         // InvalidArgument
absl::Status RequestTooLargeError();      // InvalidArgument
absl::Status CompactedRevisionError();    // OutOfRange
absl::Status FutureRevisionError();       // OutOfRange
absl::Status LeaseNotFoundError();        // NotFound
absl::Status LeaseExistsError();          // FailedPrecondition
absl::Status LeaseTtlTooLargeError();     // OutOfRange
absl::Status TimeoutError();              // Unavailable
absl::Status MemberNotFoundError();       // NotFound
absl::Status BadLeaderTransfereeError();  // FailedPrecondition

// Leadership, alarms and membership.
absl::Status NotLeaderError();                // FailedPrecondition
absl::Status LeaderTransferTimeoutError();    // Unavailable
absl::Status NoSpaceError();                  // ResourceExhausted
absl::Status CorruptError();                  // DataLoss
absl::Status MemberBadUrlsError();            // InvalidArgument
absl::Status PeerUrlExistsError();            // FailedPrecondition
absl::Status MemberNotLearnerError();         // FailedPrecondition
absl::Status NotEnoughStartedMembersError();  // FailedPrecondition
absl::Status UnhealthyClusterError();         // Unavailable
absl::Status TooManyLearnersError();          // FailedPrecondition
absl::Status LearnerNotReadyError();          // FailedPrecondition
absl::Status NotSupportedForLearnerError();   // Unavailable
// Not etcd's either (etcd 3.4 crashes on an unknown alarm action or on activating NONE).
// InvalidArgument.
absl::Status BadAlarmRequestError();

// Maps the MVCC store's compacted / future-revision errors to etcd's; passes others on.
absl::Status FromStoreError(const absl::Status& s);

}  // namespace kvstore::server

#endif  // KVSTORE_SERVER_ERRORS_H_
