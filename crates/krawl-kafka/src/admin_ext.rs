//! Read-only admin calls that rdkafka 0.39's [`AdminClient`] does not expose,
//! implemented directly on librdkafka's C admin API (`rdkafka-sys`).
//!
//! Covered: ListConsumerGroups, DescribeConsumerGroups,
//! ListConsumerGroupOffsets (OffsetFetch), DescribeCluster, ListOffsets,
//! DescribeConfigs (topics) and the cached cluster id / controller id.
//! Nothing in this module creates, alters or deletes anything.
//!
//! # Invariants
//!
//! * **Who owns the `rd_kafka_t`.** The handle belongs to the caller's
//!   `Arc<AdminClient<C>>`. Every wrapper clones that `Arc` and moves the
//!   clone into the blocking task that performs *all* FFI calls of the
//!   operation, so the `rd_kafka_t` outlives every object created from it,
//!   even when the caller drops the returned future (or the client) early.
//!   The raw `rd_kafka_t *` is obtained inside that task and never crosses a
//!   thread boundary as a raw pointer, so no `unsafe impl Send` is needed.
//! * **Who owns the per-call objects.** Each call creates its own temporary
//!   result queue (`rd_kafka_queue_new`), its own `rd_kafka_AdminOptions_t`
//!   and its own request objects (C strings, `rd_kafka_topic_partition_list_t`,
//!   `rd_kafka_ListConsumerGroupOffsets_t`). Each is held by a RAII guard
//!   whose `Drop` calls the matching librdkafka destructor exactly once, so
//!   every exit path — success, early error return, poll timeout, panic —
//!   frees everything. librdkafka copies options and request arguments when
//!   the call is issued, so freeing them after the call is always valid.
//! * **Who owns the result.** The result event returned by
//!   `rd_kafka_queue_poll` is owned by an `EventGuard`; every pointer
//!   reached through it (group listings, descriptions, nodes, partition
//!   lists, error objects, C strings) is borrowed from the event and is only
//!   dereferenced while the guard is alive. Everything is copied into owned
//!   Rust values before the guard is dropped.
//! * **Why `spawn_blocking`.** `rd_kafka_queue_poll` blocks the calling
//!   thread until the result arrives or the timeout expires; running it on a
//!   tokio worker would stall the runtime. One blocking-pool thread is used
//!   per in-flight call.
//! * **Thread safety.** librdkafka's admin entry points are thread-safe: they
//!   only enqueue an op on the client's internal queue and return; the
//!   librdkafka main/broker threads do the work and post the result event on
//!   the queue passed in. Because each call has a private queue, concurrent
//!   calls on the same client (and rdkafka's own `AdminClient` polling
//!   thread, which polls a different queue) never see each other's events.
//! * **Timeouts.** `timeout` is set as the admin request timeout, so
//!   librdkafka itself posts a result with `_TIMED_OUT` once it expires
//!   (including while waiting for a controller/coordinator/leader). We poll
//!   for `timeout + POLL_GRACE` as a backstop. If nothing arrives in time we
//!   return [`AdminExtError::TimedOut`] and destroy our queue handle: the
//!   queue is disabled, and when librdkafka later posts the result it finds
//!   the queue disabled and destroys the event itself — nothing leaks and
//!   nothing dangles (the in-flight op holds its own queue reference).
//!   A wrapper therefore returns within about `timeout + POLL_GRACE`.
//! * **Broker-supplied enum values.** Error codes and config sources come
//!   straight off the wire and may be values the `rdkafka-sys` Rust enums do
//!   not list (newer Kafka error codes, config source 6/7). Materialising
//!   such a value as a Rust enum is undefined behaviour, so those are read
//!   as raw integers (see the private `raw` module and `read_tpl`) and
//!   converted with `TryFrom`; unknown codes become
//!   [`AdminExtError::Kafka`] with `code() == Unknown` and the number in
//!   `name`.
//! * **Cancellation.** Dropping a returned future does not cancel the
//!   librdkafka op; the blocking task runs to completion (bounded by the
//!   timeout above), cleans up, and its result is discarded.

use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::AdminClient;
use rdkafka::client::ClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka_sys as rd;
use rdkafka_sys::rd_kafka_resp_err_t as RespErr;

pub use krawl_model::ConfigSource;

/// Extra time we wait for librdkafka's own (request-timeout) result event
/// before giving up on the queue ourselves.
const POLL_GRACE: Duration = Duration::from_millis(1000);

/// librdkafka's upper bound for `request_timeout` (1 hour).
const MAX_REQUEST_TIMEOUT_MS: u128 = 3_600_000;

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/// A broker as reported by an admin result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: i32,
    pub host: String,
    pub port: u16,
    /// `None` when the broker reports no rack (NULL or empty).
    pub rack: Option<String>,
}

/// One entry of a ListConsumerGroups result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    pub is_simple: bool,
    /// librdkafka state name: "Unknown", "PreparingRebalance",
    /// "CompletingRebalance", "Stable", "Dead" or "Empty".
    pub state: String,
    /// "Consumer" or "Classic"; `None` when the broker did not report a type
    /// (ListGroups < v5).
    pub group_type: Option<String>,
}

/// One member of a described consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub host: String,
    /// Static membership id (`group.instance.id`), if any.
    pub group_instance_id: Option<String>,
    /// Assigned `(topic, partition)` pairs.
    pub assignment: Vec<(String, i32)>,
}

/// One entry of a DescribeConsumerGroups result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    /// Per-group error (e.g. group authorization failed); the other fields
    /// are then mostly empty.
    pub error: Option<AdminExtError>,
    pub is_simple: bool,
    pub partition_assignor: Option<String>,
    /// Same names as [`GroupListing::state`].
    pub state: String,
    /// "Consumer" or "Classic" when known.
    pub group_type: Option<String>,
    pub coordinator: Option<Node>,
    pub members: Vec<MemberDescription>,
}

/// A committed offset of a consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub topic: String,
    pub partition: i32,
    /// `None` when the group has no committed offset (`RD_KAFKA_OFFSET_INVALID`).
    pub offset: Option<i64>,
    pub error: Option<AdminExtError>,
}

/// Result of DescribeCluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    pub cluster_id: Option<String>,
    pub controller: Option<Node>,
    pub nodes: Vec<Node>,
}

/// Which offset ListOffsets should return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// Log start offset.
    Earliest,
    /// High watermark (isolation level read_uncommitted).
    Latest,
}

impl OffsetSpec {
    fn as_raw(self) -> i64 {
        match self {
            OffsetSpec::Earliest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_EARLIEST as i64,
            OffsetSpec::Latest => rd::rd_kafka_OffsetSpec_t::RD_KAFKA_OFFSET_SPEC_LATEST as i64,
        }
    }
}

/// Per-partition result of ListOffsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionOffset {
    pub topic: String,
    pub partition: i32,
    pub result: Result<i64, AdminExtError>,
}

/// One config entry of a described topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub name: String,
    /// `None` when unset or when the broker withholds it (sensitive).
    pub value: Option<String>,
    pub source: ConfigSource,
    pub read_only: bool,
    pub sensitive: bool,
    pub is_default: bool,
}

/// DescribeConfigs result for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfigs {
    pub name: String,
    pub result: Result<Vec<ConfigEntry>, AdminExtError>,
}

/// Error from an admin call or for one group/partition in a result.
///
/// `name` is librdkafka's symbolic code name (e.g. `GROUP_AUTHORIZATION_FAILED`,
/// `_TIMED_OUT`), `message` the broker's or librdkafka's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminExtError {
    /// The operation (or the broker request) timed out.
    #[error("timed out ({name}): {message}")]
    TimedOut {
        code: RDKafkaErrorCode,
        name: String,
        message: String,
    },
    /// The broker does not support the API (or the needed version).
    #[error("not supported by the broker ({name}): {message}")]
    Unsupported {
        code: RDKafkaErrorCode,
        name: String,
        message: String,
    },
    /// Topic, group or cluster authorization failed.
    #[error("authorization failed ({name}): {message}")]
    Authorization {
        code: RDKafkaErrorCode,
        name: String,
        message: String,
    },
    /// Any other Kafka/librdkafka error.
    #[error("{name}: {message}")]
    Kafka {
        code: RDKafkaErrorCode,
        name: String,
        message: String,
        retriable: bool,
    },
    /// A failure of this wrapper itself (e.g. the blocking task panicked,
    /// librdkafka returned an unexpected result shape).
    #[error("internal admin_ext error: {0}")]
    Internal(String),
}

impl AdminExtError {
    /// The librdkafka error code (`Fail` for [`AdminExtError::Internal`]).
    pub fn code(&self) -> RDKafkaErrorCode {
        match self {
            AdminExtError::TimedOut { code, .. }
            | AdminExtError::Unsupported { code, .. }
            | AdminExtError::Authorization { code, .. }
            | AdminExtError::Kafka { code, .. } => *code,
            AdminExtError::Internal(_) => RDKafkaErrorCode::Fail,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            AdminExtError::TimedOut { .. } => true,
            AdminExtError::Kafka { retriable, .. } => *retriable,
            AdminExtError::Unsupported { .. }
            | AdminExtError::Authorization { .. }
            | AdminExtError::Internal(_) => false,
        }
    }

    /// Whether this is a topic/group/cluster authorization failure.
    pub fn is_authorization(&self) -> bool {
        matches!(self, AdminExtError::Authorization { .. })
    }

    /// Whether the broker does not support the API.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, AdminExtError::Unsupported { .. })
    }

    /// The broker's / librdkafka's message.
    pub fn message(&self) -> &str {
        match self {
            AdminExtError::TimedOut { message, .. }
            | AdminExtError::Unsupported { message, .. }
            | AdminExtError::Authorization { message, .. }
            | AdminExtError::Kafka { message, .. }
            | AdminExtError::Internal(message) => message,
        }
    }

    /// Builds a classified error. `retriable` is librdkafka's verdict when an
    /// `rd_kafka_error_t` was available, else `None` (use a static table).
    fn classify(
        code: RDKafkaErrorCode,
        name: String,
        message: String,
        retriable: Option<bool>,
    ) -> Self {
        use RDKafkaErrorCode as C;
        match code {
            C::OperationTimedOut | C::RequestTimedOut | C::TimedOutQueue => {
                AdminExtError::TimedOut {
                    code,
                    name,
                    message,
                }
            }
            C::UnsupportedFeature | C::UnsupportedVersion => AdminExtError::Unsupported {
                code,
                name,
                message,
            },
            C::TopicAuthorizationFailed
            | C::GroupAuthorizationFailed
            | C::ClusterAuthorizationFailed => AdminExtError::Authorization {
                code,
                name,
                message,
            },
            _ => AdminExtError::Kafka {
                code,
                name,
                message,
                retriable: retriable.unwrap_or_else(|| code_is_retriable(code)),
            },
        }
    }

    /// From a bare response code plus optional message (NULL/empty message
    /// falls back to librdkafka's description of the code).
    fn from_resp(err: RespErr, message: Option<String>) -> Self {
        // SAFETY: rd_kafka_err2name/err2str accept any code and return a
        // pointer to a static NUL-terminated string (never NULL).
        let name = unsafe { cstr_to_string(rd::rd_kafka_err2name(err)) };
        let message = match message {
            Some(m) if !m.is_empty() => m,
            // SAFETY: as above.
            _ => unsafe { cstr_to_string(rd::rd_kafka_err2str(err)) },
        };
        Self::classify(RDKafkaErrorCode::from(err), name, message, None)
    }

    /// From a raw (possibly unknown) error code; `None` for NO_ERROR.
    fn from_raw(code: c_int, message: Option<String>) -> Option<Self> {
        match RespErr::try_from(code) {
            Ok(RespErr::RD_KAFKA_RESP_ERR_NO_ERROR) => None,
            Ok(err) => Some(Self::from_resp(err, message)),
            Err(_) => Some(AdminExtError::Kafka {
                code: RDKafkaErrorCode::Unknown,
                name: format!("ERR_{code}"),
                message: message
                    .filter(|m| !m.is_empty())
                    .unwrap_or_else(|| format!("error code {code} unknown to librdkafka")),
                retriable: false,
            }),
        }
    }

    /// From a borrowed `rd_kafka_error_t`; `None` for NULL.
    ///
    /// # Safety
    /// `err` must be NULL or point to a valid `rd_kafka_error_t` that stays
    /// alive for the duration of the call.
    unsafe fn from_rd_error(err: *const rd::rd_kafka_error_t) -> Option<Self> {
        if err.is_null() {
            return None;
        }
        // SAFETY: err is non-NULL and valid per the caller's contract; the
        // returned strings are owned by `err` and copied immediately.
        unsafe {
            let raw_code = raw::error_code(err);
            let message = cstr_to_opt(rd::rd_kafka_error_string(err));
            let Ok(code) = RespErr::try_from(raw_code) else {
                return Self::from_raw(raw_code, message);
            };
            if code == RespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
                return None;
            }
            let name = cstr_to_string(rd::rd_kafka_error_name(err));
            let retriable = rd::rd_kafka_error_is_retriable(err) != 0;
            let code = RDKafkaErrorCode::from(code);
            Some(Self::classify(
                code,
                name,
                message.unwrap_or_default(),
                Some(retriable || code_is_retriable(code)),
            ))
        }
    }

    fn invalid_arg(message: impl Into<String>) -> Self {
        Self::from_resp(
            RespErr::RD_KAFKA_RESP_ERR__INVALID_ARG,
            Some(message.into()),
        )
    }
}

/// Static retriability table for codes that arrive without an
/// `rd_kafka_error_t` (event-level and per-partition errors).
fn code_is_retriable(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        C::BrokerTransportFailure
            | C::Resolve
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::TimedOutQueue
            | C::WaitingForCoordinator
            | C::UnknownPartition
            | C::UnknownTopic
            | C::Retry
            | C::UnknownTopicOrPartition
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::RequestTimedOut
            | C::BrokerNotAvailable
            | C::ReplicaNotAvailable
            | C::NetworkException
            | C::CoordinatorLoadInProgress
            | C::CoordinatorNotAvailable
            | C::NotCoordinator
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::RebalanceInProgress
            | C::NotController
            | C::KafkaStorageError
            | C::FencedLeaderEpoch
            | C::UnknownLeaderEpoch
            | C::OffsetNotAvailable
            | C::PreferredLeaderNotAvailable
            | C::UnstableOffsetCommit
            | C::ThrottlingQuotaExceeded
    )
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Malloc arenas for the whole process, set once at start by the binary
/// (before any thread exists). glibc gives each thread that allocates under
/// contention an arena of its own (up to 8 per core) and keeps what it frees
/// there: librdkafka's broker threads parse the whole cluster's Metadata, so
/// on a 50,000-topic cluster the process held about 100 MB more than it
/// used (measured in docs/benchmarks.md). Two arenas keep that in check at no
/// measurable cost in time. Not glibc: nothing to do.
pub const MALLOC_ARENAS: i32 = 2;

/// Applies [`MALLOC_ARENAS`] (glibc only); call first thing in `main`.
/// Returns whether the allocator accepted it.
pub fn limit_malloc_arenas() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only sets an allocator parameter; M_ARENA_MAX takes
        // any positive int. Called before other threads are started.
        unsafe { libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Lists all consumer groups known to every broker.
///
/// Returns the listings plus per-broker errors (a broker that failed to
/// answer does not fail the whole call).
pub async fn list_consumer_groups<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    timeout: Duration,
) -> Result<(Vec<GroupListing>, Vec<AdminExtError>), AdminExtError> {
    run_blocking(client, move |rk| {
        admin_call(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPS,
            rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPS_RESULT,
            timeout,
            // SAFETY: rk, options and queue are valid for the call.
            |rk, opts, q| unsafe { rd::rd_kafka_ListConsumerGroups(rk, opts, q) },
            |ev| {
                // SAFETY: ev is a live LISTCONSUMERGROUPS_RESULT event; all
                // pointers read below are owned by it and copied out before
                // the guard is dropped.
                unsafe {
                    let res = rd::rd_kafka_event_ListConsumerGroups_result(ev.0);
                    if res.is_null() {
                        return Err(AdminExtError::Internal(
                            "ListConsumerGroups: event carries no result".into(),
                        ));
                    }
                    let mut n = 0usize;
                    let valid = rd::rd_kafka_ListConsumerGroups_result_valid(res, &mut n);
                    let mut groups = Vec::with_capacity(n);
                    for &g in ptr_array(valid, n) {
                        if g.is_null() {
                            continue;
                        }
                        groups.push(GroupListing {
                            group_id: cstr_to_string(rd::rd_kafka_ConsumerGroupListing_group_id(g)),
                            is_simple: rd::rd_kafka_ConsumerGroupListing_is_simple_consumer_group(
                                g,
                            ) != 0,
                            state: state_name(rd::rd_kafka_ConsumerGroupListing_state(g)),
                            group_type: type_name(rd::rd_kafka_ConsumerGroupListing_type(g)),
                        });
                    }
                    let mut n_err = 0usize;
                    let errs = rd::rd_kafka_ListConsumerGroups_result_errors(res, &mut n_err);
                    let errors = ptr_array(errs, n_err)
                        .iter()
                        .filter_map(|&e| AdminExtError::from_rd_error(e))
                        .collect();
                    Ok((groups, errors))
                }
            },
        )
    })
    .await
}

/// Describes the given consumer groups (duplicates are removed; an empty
/// slice returns an empty result without contacting the cluster).
pub async fn describe_consumer_groups<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    group_ids: &[String],
    timeout: Duration,
) -> Result<Vec<GroupDescription>, AdminExtError> {
    let mut seen = HashSet::new();
    let mut c_ids = Vec::with_capacity(group_ids.len());
    for g in group_ids {
        if seen.insert(g.as_str()) {
            c_ids.push(
                CString::new(g.as_str()).map_err(|_| {
                    AdminExtError::invalid_arg(format!("group id {g:?} contains NUL"))
                })?,
            );
        }
    }
    if c_ids.is_empty() {
        return Ok(Vec::new());
    }
    run_blocking(client, move |rk| {
        // Borrowed pointers into `c_ids`, which lives until the end of this
        // closure (librdkafka strdup()s them during the call anyway).
        let mut ptrs: Vec<*const c_char> = c_ids.iter().map(|c| c.as_ptr()).collect();
        admin_call(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONSUMERGROUPS,
            rd::RD_KAFKA_EVENT_DESCRIBECONSUMERGROUPS_RESULT,
            timeout,
            // SAFETY: ptrs holds ptrs.len() valid NUL-terminated strings.
            |rk, opts, q| unsafe {
                rd::rd_kafka_DescribeConsumerGroups(rk, ptrs.as_mut_ptr(), ptrs.len(), opts, q)
            },
            |ev| {
                // SAFETY: ev is a live DESCRIBECONSUMERGROUPS_RESULT event;
                // everything is copied out while it is alive.
                unsafe {
                    let res = rd::rd_kafka_event_DescribeConsumerGroups_result(ev.0);
                    if res.is_null() {
                        return Err(AdminExtError::Internal(
                            "DescribeConsumerGroups: event carries no result".into(),
                        ));
                    }
                    let mut n = 0usize;
                    let arr = rd::rd_kafka_DescribeConsumerGroups_result_groups(res, &mut n);
                    Ok(ptr_array(arr, n)
                        .iter()
                        .filter(|g| !g.is_null())
                        .map(|&g| group_description(g))
                        .collect())
                }
            },
        )
    })
    .await
}

/// Fetches all committed offsets of one consumer group (librdkafka supports
/// exactly one group per ListConsumerGroupOffsets call). A group-level error
/// (e.g. authorization, coordinator unavailable) is returned as `Err`.
pub async fn list_consumer_group_offsets<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    group_id: &str,
    timeout: Duration,
) -> Result<Vec<CommittedOffset>, AdminExtError> {
    let c_group = CString::new(group_id)
        .map_err(|_| AdminExtError::invalid_arg(format!("group id {group_id:?} contains NUL")))?;
    run_blocking(client, move |rk| {
        // SAFETY: c_group is a valid C string; a NULL partition list means
        // "all partitions the group has committed". The returned object is
        // owned by the guard.
        let req = ListGroupOffsetsGuard(unsafe {
            rd::rd_kafka_ListConsumerGroupOffsets_new(c_group.as_ptr(), ptr::null())
        });
        if req.0.is_null() {
            return Err(AdminExtError::Internal(
                "rd_kafka_ListConsumerGroupOffsets_new returned NULL".into(),
            ));
        }
        let mut reqs = [req.0];
        admin_call(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS,
            rd::RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
            timeout,
            // SAFETY: reqs holds exactly one valid request object; librdkafka
            // copies it, ownership stays with `req`.
            |rk, opts, q| unsafe {
                rd::rd_kafka_ListConsumerGroupOffsets(rk, reqs.as_mut_ptr(), reqs.len(), opts, q)
            },
            |ev| {
                // SAFETY: ev is a live LISTCONSUMERGROUPOFFSETS_RESULT event.
                unsafe {
                    let res = rd::rd_kafka_event_ListConsumerGroupOffsets_result(ev.0);
                    if res.is_null() {
                        return Err(AdminExtError::Internal(
                            "ListConsumerGroupOffsets: event carries no result".into(),
                        ));
                    }
                    let mut n = 0usize;
                    let arr = rd::rd_kafka_ListConsumerGroupOffsets_result_groups(res, &mut n);
                    let Some(&g) = ptr_array(arr, n).iter().find(|g| !g.is_null()) else {
                        return Err(AdminExtError::Internal(
                            "ListConsumerGroupOffsets: result has no group".into(),
                        ));
                    };
                    if let Some(e) =
                        AdminExtError::from_rd_error(rd::rd_kafka_group_result_error(g))
                    {
                        return Err(e);
                    }
                    Ok(read_tpl(rd::rd_kafka_group_result_partitions(g))
                        .into_iter()
                        .map(|tp| CommittedOffset {
                            offset: (tp.offset != i64::from(rd::RD_KAFKA_OFFSET_INVALID))
                                .then_some(tp.offset),
                            error: AdminExtError::from_raw(tp.err, None),
                            topic: tp.topic,
                            partition: tp.partition,
                        })
                        .collect())
                }
            },
        )
        // `req` dropped here, after the call and its result.
    })
    .await
}

/// Describes the cluster: id, controller and brokers (with racks).
///
/// Note: librdkafka 2.12 implements `rd_kafka_DescribeCluster` with a
/// *Metadata* request, not Kafka's DescribeCluster API (key 60), so this
/// works on any broker speaking Metadata v1+ regardless of whether it
/// advertises key 60. On a broker limited to Metadata v0 (no controller id)
/// librdkafka waits for a controller and the call ends in
/// [`AdminExtError::TimedOut`]. [`AdminExtError::Unsupported`] is still
/// mapped should librdkafka report it.
pub async fn describe_cluster<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    timeout: Duration,
) -> Result<ClusterDescription, AdminExtError> {
    run_blocking(client, move |rk| {
        admin_call(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECLUSTER,
            rd::RD_KAFKA_EVENT_DESCRIBECLUSTER_RESULT,
            timeout,
            // SAFETY: rk, options and queue are valid for the call.
            |rk, opts, q| unsafe { rd::rd_kafka_DescribeCluster(rk, opts, q) },
            |ev| {
                // SAFETY: ev is a live DESCRIBECLUSTER_RESULT event.
                unsafe {
                    let res = rd::rd_kafka_event_DescribeCluster_result(ev.0);
                    if res.is_null() {
                        return Err(AdminExtError::Internal(
                            "DescribeCluster: event carries no result".into(),
                        ));
                    }
                    let mut n = 0usize;
                    let arr = rd::rd_kafka_DescribeCluster_result_nodes(res, &mut n);
                    Ok(ClusterDescription {
                        cluster_id: cstr_to_opt(rd::rd_kafka_DescribeCluster_result_cluster_id(
                            res,
                        )),
                        controller: node(rd::rd_kafka_DescribeCluster_result_controller(res)),
                        nodes: ptr_array(arr, n).iter().filter_map(|&p| node(p)).collect(),
                    })
                }
            },
        )
    })
    .await
}

/// Lists the earliest or latest offset of each partition (ListOffsets,
/// read_uncommitted). librdkafka groups the partitions by leader broker.
///
/// The output has one entry per distinct input partition, in input order.
/// Per-partition failures (including invalid input such as a negative
/// partition) are reported in [`PartitionOffset::result`]; `Err` is returned
/// only when the whole request failed.
pub async fn list_offsets<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    partitions: &[(String, i32)],
    spec: OffsetSpec,
    timeout: Duration,
) -> Result<Vec<PartitionOffset>, AdminExtError> {
    // Dedupe (librdkafka rejects the whole call on duplicates) and pre-reject
    // entries librdkafka would fail the whole batch for.
    let mut seen = HashSet::new();
    let mut order: Vec<(String, i32)> = Vec::with_capacity(partitions.len());
    let mut rejected: HashMap<(String, i32), AdminExtError> = HashMap::new();
    let mut request: Vec<(CString, i32)> = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let key = (topic.clone(), *partition);
        if !seen.insert(key.clone()) {
            continue;
        }
        order.push(key.clone());
        if topic.is_empty() || *partition < 0 {
            rejected.insert(
                key,
                AdminExtError::invalid_arg("empty topic name or negative partition"),
            );
            continue;
        }
        match CString::new(topic.as_str()) {
            Ok(c) => request.push((c, *partition)),
            Err(_) => {
                rejected.insert(key, AdminExtError::invalid_arg("topic name contains NUL"));
            }
        }
    }

    let mut found: HashMap<(String, i32), Result<i64, AdminExtError>> = HashMap::new();
    if !request.is_empty() {
        let raw_spec = spec.as_raw();
        found = run_blocking(client, move |rk| {
            let n = c_int::try_from(request.len()).unwrap_or(c_int::MAX);
            // SAFETY: creates a new list owned by the guard.
            let list = TplGuard(unsafe { rd::rd_kafka_topic_partition_list_new(n) });
            if list.0.is_null() {
                return Err(AdminExtError::Internal(
                    "rd_kafka_topic_partition_list_new returned NULL".into(),
                ));
            }
            for (topic, partition) in &request {
                // SAFETY: list is valid; topic is a valid C string that
                // librdkafka copies. The returned element pointer is valid
                // until the list is next modified, and we only write its
                // offset before the next add.
                unsafe {
                    let tp =
                        rd::rd_kafka_topic_partition_list_add(list.0, topic.as_ptr(), *partition);
                    if tp.is_null() {
                        return Err(AdminExtError::Internal(
                            "rd_kafka_topic_partition_list_add returned NULL".into(),
                        ));
                    }
                    (*tp).offset = raw_spec;
                }
            }
            admin_call(
                rk,
                rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_LISTOFFSETS,
                rd::RD_KAFKA_EVENT_LISTOFFSETS_RESULT,
                timeout,
                // SAFETY: list is valid; librdkafka copies it.
                |rk, opts, q| unsafe { rd::rd_kafka_ListOffsets(rk, list.0, opts, q) },
                |ev| {
                    // SAFETY: ev is a live LISTOFFSETS_RESULT event.
                    unsafe {
                        let res = rd::rd_kafka_event_ListOffsets_result(ev.0);
                        if res.is_null() {
                            return Err(AdminExtError::Internal(
                                "ListOffsets: event carries no result".into(),
                            ));
                        }
                        let mut n = 0usize;
                        let infos = rd::rd_kafka_ListOffsets_result_infos(res, &mut n);
                        let mut out = HashMap::with_capacity(n);
                        for &info in ptr_array(infos, n) {
                            if info.is_null() {
                                continue;
                            }
                            let tp = rd::rd_kafka_ListOffsetsResultInfo_topic_partition(info);
                            if tp.is_null() {
                                continue;
                            }
                            let tp = read_tp(tp);
                            let result = match AdminExtError::from_raw(tp.err, None) {
                                Some(e) => Err(e),
                                None => Ok(tp.offset),
                            };
                            out.insert((tp.topic, tp.partition), result);
                        }
                        Ok(out)
                    }
                },
            )
        })
        .await?;
    }

    Ok(order
        .into_iter()
        .map(|key| {
            let result = if let Some(e) = rejected.remove(&key) {
                Err(e)
            } else {
                found.remove(&key).unwrap_or_else(|| {
                    Err(AdminExtError::Kafka {
                        code: RDKafkaErrorCode::Fail,
                        name: "_FAIL".into(),
                        message: "no result returned for this partition".into(),
                        retriable: true,
                    })
                })
            };
            PartitionOffset {
                topic: key.0,
                partition: key.1,
                result,
            }
        })
        .collect())
}

/// Describes the configs of the given topics (DescribeConfigs, read-only).
///
/// One [`TopicConfigs`] per distinct topic, in librdkafka's result order;
/// per-topic failures (e.g. authorization) are in [`TopicConfigs::result`].
/// An empty slice returns an empty result without contacting the cluster.
pub async fn describe_topic_configs<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<TopicConfigs>, AdminExtError> {
    let mut seen = HashSet::new();
    let mut names = Vec::with_capacity(topics.len());
    for t in topics {
        if seen.insert(t.as_str()) {
            names
                .push(CString::new(t.as_str()).map_err(|_| {
                    AdminExtError::invalid_arg(format!("topic {t:?} contains NUL"))
                })?);
        }
    }
    if names.is_empty() {
        return Ok(Vec::new());
    }
    run_blocking(client, move |rk| {
        let mut resources = ConfigResourcesGuard(Vec::with_capacity(names.len()));
        for name in &names {
            // SAFETY: name is a valid C string (copied by librdkafka); the
            // new resource is owned by the guard.
            let r = unsafe {
                rd::rd_kafka_ConfigResource_new(
                    rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_TOPIC,
                    name.as_ptr(),
                )
            };
            if r.is_null() {
                return Err(AdminExtError::Internal(
                    "rd_kafka_ConfigResource_new returned NULL".into(),
                ));
            }
            resources.0.push(r);
        }
        admin_call(
            rk,
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS,
            rd::RD_KAFKA_EVENT_DESCRIBECONFIGS_RESULT,
            timeout,
            // SAFETY: resources holds len() valid resources; librdkafka
            // copies them, ownership stays with the guard.
            |rk, opts, q| unsafe {
                rd::rd_kafka_DescribeConfigs(
                    rk,
                    resources.0.as_mut_ptr(),
                    resources.0.len(),
                    opts,
                    q,
                )
            },
            |ev| {
                // SAFETY: ev is a live DESCRIBECONFIGS_RESULT event.
                unsafe {
                    let res = rd::rd_kafka_event_DescribeConfigs_result(ev.0);
                    if res.is_null() {
                        return Err(AdminExtError::Internal(
                            "DescribeConfigs: event carries no result".into(),
                        ));
                    }
                    let mut n = 0usize;
                    let arr = rd::rd_kafka_DescribeConfigs_result_resources(res, &mut n);
                    let mut out = Vec::with_capacity(n);
                    for &r in ptr_array(arr, n) {
                        if r.is_null() {
                            continue;
                        }
                        let name = cstr_to_string(rd::rd_kafka_ConfigResource_name(r));
                        let err = AdminExtError::from_raw(
                            raw::config_resource_error(r),
                            cstr_to_opt(rd::rd_kafka_ConfigResource_error_string(r)),
                        );
                        let result = match err {
                            Some(e) => Err(e),
                            None => {
                                let mut m = 0usize;
                                let entries = rd::rd_kafka_ConfigResource_configs(r, &mut m);
                                Ok(ptr_array(entries, m)
                                    .iter()
                                    .filter(|e| !e.is_null())
                                    .map(|&e| ConfigEntry {
                                        name: cstr_to_string(rd::rd_kafka_ConfigEntry_name(e)),
                                        value: cstr_to_opt(rd::rd_kafka_ConfigEntry_value(e)),
                                        source: config_source(raw::config_entry_source(e)),
                                        read_only: rd::rd_kafka_ConfigEntry_is_read_only(e) != 0,
                                        sensitive: rd::rd_kafka_ConfigEntry_is_sensitive(e) != 0,
                                        is_default: rd::rd_kafka_ConfigEntry_is_default(e) != 0,
                                    })
                                    .collect())
                            }
                        };
                        out.push(TopicConfigs { name, result });
                    }
                    Ok(out)
                }
            },
        )
    })
    .await
}

/// Cluster id and controller id from librdkafka's metadata cache (waiting
/// up to `timeout` each for metadata if none is cached). Works on brokers
/// without DescribeCluster; `None` where unknown. Never fails.
pub async fn cluster_id_and_controller<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    timeout: Duration,
) -> (Option<String>, Option<i32>) {
    let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
    run_blocking(client, move |rk| {
        // SAFETY: rk is live; the returned string is malloc'ed by librdkafka
        // and freed by the guard with rd_kafka_mem_free.
        let id = RdMemGuard {
            rk,
            ptr: unsafe { rd::rd_kafka_clusterid(rk, ms) },
        };
        // SAFETY: id.ptr is NULL or a valid C string until the guard drops.
        let cluster_id = unsafe { cstr_to_opt(id.ptr) };
        // SAFETY: rk is live.
        let controller = unsafe { rd::rd_kafka_controllerid(rk, ms) };
        Ok((cluster_id, (controller >= 0).then_some(controller)))
    })
    .await
    .unwrap_or((None, None))
}

/// A brokers-only Metadata request (no topics): the cheap way to prove the
/// cluster answers. Returns the brokers it advertises as `(id, host, port)`.
pub async fn probe_brokers<C: ClientContext + 'static>(
    client: &Arc<AdminClient<C>>,
    timeout: Duration,
) -> Result<Vec<(i32, String, u16)>, AdminExtError> {
    run_blocking(client, move |rk| {
        let ms = c_int::try_from(timeout.as_millis()).unwrap_or(c_int::MAX);
        let mut md: *const rd::rd_kafka_metadata_t = ptr::null();
        // SAFETY: rk is live; all_topics = 0 with no topic handle asks for
        // the locally known topics: none, or the MetadataAnchor's invalid
        // name, so the broker answers with brokers only (and an error for the
        // anchor). `md` is ours to destroy.
        let err = unsafe { rd::rd_kafka_metadata(rk, 0, ptr::null_mut(), &mut md, ms) };
        if err != RespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
            return Err(AdminExtError::from_resp(err, None));
        }
        if md.is_null() {
            return Err(AdminExtError::Internal(
                "Metadata returned no result".into(),
            ));
        }
        // SAFETY: md is a valid metadata result until destroyed just below;
        // `brokers` points at `broker_cnt` entries (NULL when there are none),
        // each with a NUL-terminated host (copied out before the destroy).
        let brokers = unsafe {
            let n = usize::try_from((*md).broker_cnt).unwrap_or(0);
            let list = (*md).brokers;
            let mut out = Vec::with_capacity(n);
            if !list.is_null() {
                for i in 0..n {
                    let b = &*list.add(i);
                    out.push((
                        b.id,
                        cstr_to_string(b.host),
                        u16::try_from(b.port).unwrap_or(0),
                    ));
                }
            }
            out
        };
        // SAFETY: md came from rd_kafka_metadata and is destroyed once.
        unsafe { rd::rd_kafka_metadata_destroy(md) };
        Ok(brokers)
    })
    .await
}

/// The topic name a [`MetadataAnchor`] holds: `:` is not a legal character
/// of a Kafka topic name, so no broker has such a topic or can create one
/// (the broker answers INVALID_TOPIC_EXCEPTION, whatever its auto-create
/// settings).
pub const METADATA_ANCHOR_TOPIC: &str = "krawl:brokers-only";

/// A topic handle that keeps librdkafka from sending Metadata requests for
/// an empty topic list.
///
/// An admin client knows no topics, so librdkafka's own refreshes (on every
/// broker connection, and `probe_brokers`) ask for "no topics" to learn the
/// brokers. Apache Kafka answers that with brokers only; noida-db and Tansu
/// answer it with every topic, and librdkafka then parses and caches the
/// whole cluster: 106 MB at 100,000 topics, more than the rest of the
/// extraction. With this handle alive librdkafka's "locally known topics"
/// are this one invalid name, and every such request asks for it alone.
///
/// Invariants: holds an `Arc` of the client, so `rk` outlives the handle;
/// the handle is destroyed exactly once, on drop.
pub struct MetadataAnchor<C: ClientContext + 'static> {
    /// Held, never read: keeps `rk` alive until the handle is destroyed.
    _client: Arc<AdminClient<C>>,
    rkt: *mut rd::rd_kafka_topic_t,
}

// SAFETY: a librdkafka topic handle may be used and destroyed from any
// thread (librdkafka locks internally); the pointer is only destroyed.
unsafe impl<C: ClientContext + 'static> Send for MetadataAnchor<C> {}
// SAFETY: as above; no method reads through the pointer.
unsafe impl<C: ClientContext + 'static> Sync for MetadataAnchor<C> {}

impl<C: ClientContext + 'static> std::fmt::Debug for MetadataAnchor<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataAnchor")
            .field("topic", &METADATA_ANCHOR_TOPIC)
            .finish_non_exhaustive()
    }
}

impl<C: ClientContext + 'static> MetadataAnchor<C> {
    pub fn new(client: &Arc<AdminClient<C>>) -> Result<Self, AdminExtError> {
        let name = CString::new(METADATA_ANCHOR_TOPIC)
            .map_err(|_| AdminExtError::invalid_arg("anchor topic name"))?;
        // SAFETY: rk is live (we hold the client); `name` is a valid C string
        // that librdkafka copies; a NULL conf means the defaults. The handle
        // is ours to destroy.
        let rkt = unsafe {
            rd::rd_kafka_topic_new(client.inner().native_ptr(), name.as_ptr(), ptr::null_mut())
        };
        if rkt.is_null() {
            return Err(AdminExtError::Internal(
                "librdkafka refused the metadata anchor topic handle".into(),
            ));
        }
        Ok(Self {
            _client: Arc::clone(client),
            rkt,
        })
    }
}

impl<C: ClientContext + 'static> Drop for MetadataAnchor<C> {
    fn drop(&mut self) {
        // SAFETY: rkt came from rd_kafka_topic_new on this client, which is
        // still alive (self._client), and is destroyed only here.
        unsafe { rd::rd_kafka_topic_destroy(self.rkt) };
    }
}

// ---------------------------------------------------------------------------
// Main-queue poller
// ---------------------------------------------------------------------------

/// Serves the client's main queue, where librdkafka posts log lines and
/// connection errors. rdkafka's `AdminClient` never polls that queue, so
/// without this the context's `log` and `error` callbacks are never called.
///
/// Invariants: the thread holds an `Arc` of the client, so `rk` outlives it;
/// it takes its own reference to the main queue and destroys it on exit;
/// [`MainQueuePoller::stop`] (also run on drop) joins it within ~100 ms.
#[derive(Debug)]
pub struct MainQueuePoller {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl MainQueuePoller {
    /// Starts polling. When `sasl_background` is set, SASL callbacks (the
    /// built-in OIDC token refresh) are also moved to librdkafka's background
    /// thread, so they run whatever this poller does.
    pub fn start<C: ClientContext + 'static>(
        client: &Arc<AdminClient<C>>,
        sasl_background: bool,
    ) -> Result<Self, AdminExtError> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let client = Arc::clone(client);
        if sasl_background {
            // SAFETY: rk is live (we hold the client); the returned error,
            // when not NULL, is ours to destroy.
            unsafe {
                let err =
                    rd::rd_kafka_sasl_background_callbacks_enable(client.inner().native_ptr());
                if !err.is_null() {
                    let e = AdminExtError::from_rd_error(err);
                    rd::rd_kafka_error_destroy(err);
                    if let Some(e) = e {
                        return Err(e);
                    }
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("krawl-rdkafka-main".into())
            .spawn(move || {
                let rk = client.inner().native_ptr();
                // SAFETY: rk is live for the thread's life (client Arc held).
                let queue = QueueGuard(unsafe { rd::rd_kafka_queue_get_main(rk) });
                if queue.0.is_null() {
                    return;
                }
                let ctx = client.inner().context();
                while !stop2.load(Ordering::Relaxed) {
                    // SAFETY: queue is a live reference to the main queue.
                    let ev = EventGuard(unsafe { rd::rd_kafka_queue_poll(queue.0, 100) });
                    if ev.0.is_null() {
                        continue;
                    }
                    // SAFETY: ev is a live event; strings it returns are
                    // borrowed from it and copied before it is destroyed.
                    unsafe {
                        match rd::rd_kafka_event_type(ev.0) {
                            rd::RD_KAFKA_EVENT_LOG => {
                                let mut fac: *const c_char = ptr::null();
                                let mut msg: *const c_char = ptr::null();
                                let mut level: c_int = 0;
                                if rd::rd_kafka_event_log(ev.0, &mut fac, &mut msg, &mut level) == 0
                                {
                                    ctx.log(
                                        log_level(level),
                                        cstr_to_string(fac).trim(),
                                        cstr_to_string(msg).trim(),
                                    );
                                }
                            }
                            rd::RD_KAFKA_EVENT_ERROR => {
                                let code = RespErr::try_from(raw::event_error(ev.0))
                                    .map(RDKafkaErrorCode::from)
                                    .unwrap_or(RDKafkaErrorCode::Unknown);
                                let reason = cstr_to_string(rd::rd_kafka_event_error_string(ev.0));
                                ctx.error(rdkafka::error::KafkaError::Global(code), reason.trim());
                            }
                            _ => {}
                        }
                    }
                }
                drop(queue);
                drop(client);
            })
            .map_err(|e| {
                AdminExtError::Internal(format!("cannot start the main-queue poller: {e}"))
            })?;
        Ok(Self {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops and joins the poller.
    pub fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// syslog level → rdkafka's enum (its own conversion is crate-private).
fn log_level(level: c_int) -> rdkafka::config::RDKafkaLogLevel {
    use rdkafka::config::RDKafkaLogLevel as L;
    match level {
        i32::MIN..=0 => L::Emerg,
        1 => L::Alert,
        2 => L::Critical,
        3 => L::Error,
        4 => L::Warning,
        5 => L::Notice,
        6 => L::Info,
        _ => L::Debug,
    }
}

impl Drop for MainQueuePoller {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// Call machinery
// ---------------------------------------------------------------------------

/// Runs `f` on tokio's blocking pool with a clone of `client` kept alive for
/// the whole call; `f` receives the client's `rd_kafka_t`.
async fn run_blocking<C, T, F>(client: &Arc<AdminClient<C>>, f: F) -> Result<T, AdminExtError>
where
    C: ClientContext + 'static,
    T: Send + 'static,
    F: FnOnce(*mut rd::rd_kafka_t) -> Result<T, AdminExtError> + Send + 'static,
{
    let client = Arc::clone(client);
    tokio::task::spawn_blocking(move || {
        let rk = client.inner().native_ptr();
        let out = f(rk);
        // Only now may the client (and thus rk) go away.
        drop(client);
        out
    })
    .await
    .map_err(|e| AdminExtError::Internal(format!("admin_ext worker task failed: {e}")))?
}

/// Creates queue + options, issues the request via `issue`, waits for the
/// result event of type `expected`, turns an event-level error into `Err`
/// and otherwise hands the event to `extract`. Blocking.
fn admin_call<T>(
    rk: *mut rd::rd_kafka_t,
    op: rd::rd_kafka_admin_op_t,
    expected: rd::rd_kafka_event_type_t,
    timeout: Duration,
    issue: impl FnOnce(
        *mut rd::rd_kafka_t,
        *const rd::rd_kafka_AdminOptions_t,
        *mut rd::rd_kafka_queue_t,
    ),
    extract: impl FnOnce(&EventGuard) -> Result<T, AdminExtError>,
) -> Result<T, AdminExtError> {
    // Declaration order matters: guards drop in reverse (event, options, queue).
    // SAFETY: rk is the live handle of the client kept alive by run_blocking.
    let queue = QueueGuard(unsafe { rd::rd_kafka_queue_new(rk) });
    if queue.0.is_null() {
        return Err(AdminExtError::Internal(
            "rd_kafka_queue_new returned NULL".into(),
        ));
    }
    // SAFETY: as above.
    let options = OptionsGuard(unsafe { rd::rd_kafka_AdminOptions_new(rk, op) });
    if options.0.is_null() {
        return Err(AdminExtError::Internal(
            "rd_kafka_AdminOptions_new returned NULL".into(),
        ));
    }
    let req_ms = timeout.as_millis().clamp(1, MAX_REQUEST_TIMEOUT_MS);
    let req_ms_c = c_int::try_from(req_ms).unwrap_or(c_int::MAX);
    let mut errstr = [0 as c_char; 256];
    // SAFETY: options is valid; errstr is a writable buffer of the given size.
    let err = unsafe {
        rd::rd_kafka_AdminOptions_set_request_timeout(
            options.0,
            req_ms_c,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if err != RespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka NUL-terminates errstr on error.
        let msg = unsafe { cstr_to_string(errstr.as_ptr()) };
        return Err(AdminExtError::from_resp(err, Some(msg)));
    }

    issue(rk, options.0, queue.0);

    let deadline = Instant::now() + Duration::from_millis(req_ms as u64) + POLL_GRACE;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            // The queue guard disables the queue; librdkafka destroys the
            // late result event itself.
            return Err(AdminExtError::TimedOut {
                code: RDKafkaErrorCode::OperationTimedOut,
                name: "_TIMED_OUT".into(),
                message: format!(
                    "no admin result within {} ms",
                    req_ms + POLL_GRACE.as_millis()
                ),
            });
        }
        let poll_ms = c_int::try_from(remaining.as_millis().max(1)).unwrap_or(c_int::MAX);
        // SAFETY: queue is valid; the returned event (if any) is owned by us.
        let ev = EventGuard(unsafe { rd::rd_kafka_queue_poll(queue.0, poll_ms) });
        if ev.0.is_null() {
            continue;
        }
        // SAFETY: ev is a valid event.
        let ty = unsafe { rd::rd_kafka_event_type(ev.0) };
        if ty != expected {
            tracing::debug!(
                event_type = ty,
                expected,
                "admin_ext: ignoring unexpected event"
            );
            continue;
        }
        // SAFETY: ev is valid; the error string is owned by ev and copied.
        let err = unsafe { raw::event_error(ev.0) };
        if err != 0 {
            // SAFETY: as above.
            let msg = unsafe { cstr_to_opt(rd::rd_kafka_event_error_string(ev.0)) };
            if let Some(e) = AdminExtError::from_raw(err, msg) {
                return Err(e);
            }
        }
        return extract(&ev);
    }
}

// ---------------------------------------------------------------------------
// RAII guards (each frees its object exactly once, NULL-tolerant)
// ---------------------------------------------------------------------------

struct QueueGuard(*mut rd::rd_kafka_queue_t);
impl Drop for QueueGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by rd_kafka_queue_new, destroyed only here.
            unsafe { rd::rd_kafka_queue_destroy(self.0) }
        }
    }
}

struct OptionsGuard(*mut rd::rd_kafka_AdminOptions_t);
impl Drop for OptionsGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by rd_kafka_AdminOptions_new, destroyed only here.
            unsafe { rd::rd_kafka_AdminOptions_destroy(self.0) }
        }
    }
}

/// Owns one result event from `rd_kafka_queue_poll`.
struct EventGuard(*mut rd::rd_kafka_event_t);
impl Drop for EventGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: returned by rd_kafka_queue_poll, destroyed only here.
            unsafe { rd::rd_kafka_event_destroy(self.0) }
        }
    }
}

struct TplGuard(*mut rd::rd_kafka_topic_partition_list_t);
impl Drop for TplGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by rd_kafka_topic_partition_list_new.
            unsafe { rd::rd_kafka_topic_partition_list_destroy(self.0) }
        }
    }
}

struct ListGroupOffsetsGuard(*mut rd::rd_kafka_ListConsumerGroupOffsets_t);
impl Drop for ListGroupOffsetsGuard {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by rd_kafka_ListConsumerGroupOffsets_new.
            unsafe { rd::rd_kafka_ListConsumerGroupOffsets_destroy(self.0) }
        }
    }
}

/// Owns the `rd_kafka_ConfigResource_t`s of one DescribeConfigs request.
struct ConfigResourcesGuard(Vec<*mut rd::rd_kafka_ConfigResource_t>);
impl Drop for ConfigResourcesGuard {
    fn drop(&mut self) {
        for &r in &self.0 {
            // SAFETY: each was created by rd_kafka_ConfigResource_new, is
            // non-NULL (checked before push) and destroyed only here.
            unsafe { rd::rd_kafka_ConfigResource_destroy(r) }
        }
    }
}

/// Owns a buffer librdkafka allocated for the application.
struct RdMemGuard {
    rk: *mut rd::rd_kafka_t,
    ptr: *mut c_char,
}
impl Drop for RdMemGuard {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: ptr was returned by librdkafka for rk and is freed once.
            unsafe { rd::rd_kafka_mem_free(self.rk, self.ptr.cast::<c_void>()) }
        }
    }
}

// ---------------------------------------------------------------------------
// Copy-out helpers
// ---------------------------------------------------------------------------

/// # Safety
/// `p` must be NULL or a valid NUL-terminated string.
unsafe fn cstr_to_opt(p: *const c_char) -> Option<String> {
    if p.is_null() {
        None
    } else {
        // SAFETY: non-NULL and valid per the caller's contract.
        Some(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
    }
}

/// # Safety
/// As [`cstr_to_opt`]; NULL becomes "".
unsafe fn cstr_to_string(p: *const c_char) -> String {
    // SAFETY: forwarded contract.
    unsafe { cstr_to_opt(p) }.unwrap_or_default()
}

/// # Safety
/// `arr` must be NULL or point to `n` readable pointers that outlive `'a`.
unsafe fn ptr_array<'a, T>(arr: *mut *const T, n: usize) -> &'a [*const T] {
    if arr.is_null() || n == 0 {
        &[]
    } else {
        // SAFETY: per the caller's contract.
        unsafe { std::slice::from_raw_parts(arr as *const *const T, n) }
    }
}

/// Owned copy of the fields of one `rd_kafka_topic_partition_t` we use.
struct RawTp {
    topic: String,
    partition: i32,
    offset: i64,
    /// Raw `rd_kafka_resp_err_t` (may be a code the Rust enum lacks).
    err: c_int,
}

/// Copies one partition element field by field through the raw pointer,
/// never materialising the (possibly out-of-range) `err` enum.
///
/// # Safety
/// `tp` must point to a valid, initialised `rd_kafka_topic_partition_t`.
unsafe fn read_tp(tp: *const rd::rd_kafka_topic_partition_t) -> RawTp {
    // SAFETY: per the caller's contract; `err` is a `repr(i32)` enum so its
    // storage is read as `c_int`.
    unsafe {
        RawTp {
            topic: cstr_to_string(ptr::addr_of!((*tp).topic).read()),
            partition: ptr::addr_of!((*tp).partition).read(),
            offset: ptr::addr_of!((*tp).offset).read(),
            err: ptr::addr_of!((*tp).err).cast::<c_int>().read(),
        }
    }
}

/// # Safety
/// `list` must be NULL or a valid partition list.
unsafe fn read_tpl(list: *const rd::rd_kafka_topic_partition_list_t) -> Vec<RawTp> {
    if list.is_null() {
        return Vec::new();
    }
    // SAFETY: list is valid per the caller's contract; elems holds cnt
    // initialised elements.
    unsafe {
        let n = usize::try_from(ptr::addr_of!((*list).cnt).read()).unwrap_or(0);
        let elems = ptr::addr_of!((*list).elems).read();
        if elems.is_null() {
            return Vec::new();
        }
        (0..n).map(|i| read_tp(elems.add(i))).collect()
    }
}

/// Declarations of librdkafka symbols that `rdkafka-sys` binds with a Rust
/// enum return type, re-declared here returning `c_int`: the values can be
/// broker-supplied numbers outside the enum (see the module invariants).
/// Same symbols, same C ABI (`int`/C enum), only the Rust view differs.
mod raw {
    use rdkafka_sys as rd;
    use std::ffi::c_int;

    extern "C" {
        #[link_name = "rd_kafka_event_error"]
        pub fn event_error(rkev: *mut rd::rd_kafka_event_t) -> c_int;
        #[link_name = "rd_kafka_error_code"]
        pub fn error_code(error: *const rd::rd_kafka_error_t) -> c_int;
        #[link_name = "rd_kafka_ConfigResource_error"]
        pub fn config_resource_error(config: *const rd::rd_kafka_ConfigResource_t) -> c_int;
        #[link_name = "rd_kafka_ConfigEntry_source"]
        pub fn config_entry_source(entry: *const rd::rd_kafka_ConfigEntry_t) -> c_int;
    }
}

fn config_source(raw_source: c_int) -> ConfigSource {
    match raw_source {
        1 => ConfigSource::Topic,
        2 => ConfigSource::DynamicBroker,
        3 => ConfigSource::DynamicDefaultBroker,
        4 => ConfigSource::StaticBroker,
        5 => ConfigSource::Default,
        _ => ConfigSource::Unknown,
    }
}

fn state_name(state: rd::rd_kafka_consumer_group_state_t) -> String {
    // SAFETY: returns a static string or NULL for out-of-range values.
    unsafe { cstr_to_opt(rd::rd_kafka_consumer_group_state_name(state)) }
        .unwrap_or_else(|| "Unknown".to_owned())
}

fn type_name(ty: rd::rd_kafka_consumer_group_type_t) -> Option<String> {
    if ty == rd::rd_kafka_consumer_group_type_t::RD_KAFKA_CONSUMER_GROUP_TYPE_UNKNOWN {
        return None;
    }
    // SAFETY: returns a static string or NULL for out-of-range values.
    unsafe { cstr_to_opt(rd::rd_kafka_consumer_group_type_name(ty)) }
}

/// # Safety
/// `n` must be NULL or a valid node borrowed from a live result.
unsafe fn node(n: *const rd::rd_kafka_Node_t) -> Option<Node> {
    if n.is_null() {
        return None;
    }
    // SAFETY: n is valid per the caller's contract.
    unsafe {
        Some(Node {
            id: rd::rd_kafka_Node_id(n),
            host: cstr_to_string(rd::rd_kafka_Node_host(n)),
            port: rd::rd_kafka_Node_port(n),
            rack: cstr_to_opt(rd::rd_kafka_Node_rack(n)).filter(|r| !r.is_empty()),
        })
    }
}

/// # Safety
/// `g` must be a valid group description borrowed from a live result.
unsafe fn group_description(g: *const rd::rd_kafka_ConsumerGroupDescription_t) -> GroupDescription {
    // SAFETY: g and everything reached from it is owned by the live result.
    unsafe {
        let count = rd::rd_kafka_ConsumerGroupDescription_member_count(g);
        let mut members = Vec::with_capacity(count);
        for i in 0..count {
            let m = rd::rd_kafka_ConsumerGroupDescription_member(g, i);
            if m.is_null() {
                continue;
            }
            let assignment_obj = rd::rd_kafka_MemberDescription_assignment(m);
            let assignment = if assignment_obj.is_null() {
                Vec::new()
            } else {
                read_tpl(rd::rd_kafka_MemberAssignment_partitions(assignment_obj))
                    .into_iter()
                    .map(|tp| (tp.topic, tp.partition))
                    .collect()
            };
            members.push(MemberDescription {
                member_id: cstr_to_string(rd::rd_kafka_MemberDescription_consumer_id(m)),
                client_id: cstr_to_string(rd::rd_kafka_MemberDescription_client_id(m)),
                host: cstr_to_string(rd::rd_kafka_MemberDescription_host(m)),
                group_instance_id: cstr_to_opt(rd::rd_kafka_MemberDescription_group_instance_id(m))
                    .filter(|s| !s.is_empty()),
                assignment,
            });
        }
        GroupDescription {
            group_id: cstr_to_string(rd::rd_kafka_ConsumerGroupDescription_group_id(g)),
            error: AdminExtError::from_rd_error(rd::rd_kafka_ConsumerGroupDescription_error(g)),
            is_simple: rd::rd_kafka_ConsumerGroupDescription_is_simple_consumer_group(g) != 0,
            partition_assignor: cstr_to_opt(
                rd::rd_kafka_ConsumerGroupDescription_partition_assignor(g),
            )
            .filter(|s| !s.is_empty()),
            state: state_name(rd::rd_kafka_ConsumerGroupDescription_state(g)),
            group_type: type_name(rd::rd_kafka_ConsumerGroupDescription_type(g)),
            coordinator: node(rd::rd_kafka_ConsumerGroupDescription_coordinator(g)),
            members,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    const TIMEOUT: Duration = Duration::from_secs(2);
    /// librdkafka posts its own timeout result at TIMEOUT; we allow the
    /// poll grace plus scheduling slack.
    const BOUND: Duration = Duration::from_millis(2000 + 1000 + 1500);

    fn unreachable_client() -> Arc<AdminClient<DefaultClientContext>> {
        let client: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("log_level", "0")
            .create()
            .expect("admin client config is valid");
        Arc::new(client)
    }

    fn check_elapsed(what: &str, start: Instant) {
        let elapsed = start.elapsed();
        assert!(elapsed < BOUND, "{what} took {elapsed:?}");
        eprintln!("{what}: returned after {elapsed:?}");
    }

    #[test]
    fn classification() {
        let e = AdminExtError::from_resp(RespErr::RD_KAFKA_RESP_ERR__TIMED_OUT, None);
        assert!(matches!(e, AdminExtError::TimedOut { .. }));
        assert!(e.is_retriable());
        assert_eq!(e.code(), RDKafkaErrorCode::OperationTimedOut);

        for err in [
            RespErr::RD_KAFKA_RESP_ERR__UNSUPPORTED_FEATURE,
            RespErr::RD_KAFKA_RESP_ERR_UNSUPPORTED_VERSION,
        ] {
            let e = AdminExtError::from_resp(err, Some("nope".into()));
            assert!(matches!(e, AdminExtError::Unsupported { .. }), "{e:?}");
            assert!(!e.is_retriable());
            assert_eq!(e.message(), "nope");
        }
        for err in [
            RespErr::RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED,
            RespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
            RespErr::RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED,
        ] {
            let e = AdminExtError::from_resp(err, None);
            assert!(matches!(e, AdminExtError::Authorization { .. }), "{e:?}");
            assert!(!e.is_retriable());
        }
        let e = AdminExtError::from_resp(RespErr::RD_KAFKA_RESP_ERR_NOT_COORDINATOR, None);
        assert!(matches!(e, AdminExtError::Kafka { .. }));
        assert!(e.is_retriable());
        assert_eq!(e.code(), RDKafkaErrorCode::NotCoordinator);
        assert!(e.to_string().contains("NOT_COORDINATOR"), "{e}");
        let e = AdminExtError::from_resp(RespErr::RD_KAFKA_RESP_ERR_INVALID_GROUP_ID, None);
        assert!(!e.is_retriable());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_broker_errors_within_timeout() {
        let client = unreachable_client();

        let start = Instant::now();
        let r = list_consumer_groups(&client, TIMEOUT).await;
        check_elapsed("list_consumer_groups", start);
        // Either the whole call fails or every broker reported an error.
        match r {
            Err(e) => eprintln!("list_consumer_groups: {e}"),
            Ok((groups, errors)) => {
                assert!(groups.is_empty());
                assert!(!errors.is_empty(), "expected per-broker errors");
                eprintln!("list_consumer_groups: per-broker errors {errors:?}");
            }
        }

        let start = Instant::now();
        let r = describe_consumer_groups(&client, &["g1".to_owned()], TIMEOUT).await;
        check_elapsed("describe_consumer_groups", start);
        match r {
            Err(e) => eprintln!("describe_consumer_groups: {e}"),
            Ok(groups) => {
                assert!(
                    groups.iter().all(|g| g.error.is_some()),
                    "expected per-group errors: {groups:?}"
                );
                eprintln!("describe_consumer_groups: per-group errors {groups:?}");
            }
        }

        let start = Instant::now();
        let e = list_consumer_group_offsets(&client, "g1", TIMEOUT)
            .await
            .expect_err("offsets must fail");
        check_elapsed("list_consumer_group_offsets", start);
        eprintln!("list_consumer_group_offsets: {e}");

        let start = Instant::now();
        let e = describe_cluster(&client, TIMEOUT)
            .await
            .expect_err("describe_cluster must fail");
        check_elapsed("describe_cluster", start);
        eprintln!("describe_cluster: {e}");

        let start = Instant::now();
        let parts = vec![
            ("t".to_owned(), 0),
            ("t".to_owned(), 1),
            ("t".to_owned(), 0),
        ];
        let r = list_offsets(&client, &parts, OffsetSpec::Latest, TIMEOUT).await;
        check_elapsed("list_offsets", start);
        match r {
            Err(e) => eprintln!("list_offsets: {e}"),
            Ok(v) => {
                assert_eq!(v.len(), 2, "duplicates are removed");
                assert!(v.iter().all(|p| p.result.is_err()), "{v:?}");
                eprintln!("list_offsets: per-partition errors {v:?}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreachable_broker_configs_and_cached_ids() {
        let client = unreachable_client();

        let start = Instant::now();
        let r = describe_topic_configs(&client, &["t".to_owned()], TIMEOUT).await;
        check_elapsed("describe_topic_configs", start);
        match r {
            Err(e) => eprintln!("describe_topic_configs: {e} after {:?}", start.elapsed()),
            Ok(v) => {
                assert!(v.iter().all(|t| t.result.is_err()), "{v:?}");
                eprintln!("describe_topic_configs: per-topic errors {v:?}");
            }
        }

        // Two cache lookups, each waiting up to TIMEOUT for metadata.
        let start = Instant::now();
        let (id, ctl) = cluster_id_and_controller(&client, TIMEOUT).await;
        let elapsed = start.elapsed();
        assert!(
            elapsed < 2 * TIMEOUT + Duration::from_millis(1500),
            "{elapsed:?}"
        );
        assert_eq!((id, ctl), (None, None));
        eprintln!("cluster_id_and_controller: (None, None) after {elapsed:?}");
    }

    #[tokio::test]
    async fn empty_and_invalid_inputs_do_not_contact_the_cluster() {
        let client = unreachable_client();
        let start = Instant::now();
        assert!(describe_consumer_groups(&client, &[], TIMEOUT)
            .await
            .expect("empty describe is Ok")
            .is_empty());
        let v = list_offsets(
            &client,
            &[("".to_owned(), 0), ("t".to_owned(), -1)],
            OffsetSpec::Earliest,
            TIMEOUT,
        )
        .await
        .expect("invalid partitions are per-partition errors");
        assert_eq!(v.len(), 2);
        assert!(v.iter().all(|p| p
            .result
            .as_ref()
            .is_err_and(|e| e.code() == RDKafkaErrorCode::InvalidArgument)));
        let e = list_consumer_group_offsets(&client, "a\0b", TIMEOUT)
            .await
            .expect_err("NUL in group id");
        assert_eq!(e.code(), RDKafkaErrorCode::InvalidArgument);
        assert!(v
            .iter()
            .all(|p| p.result.as_ref().is_err_and(|e| !e.is_retriable())));
        assert!(describe_topic_configs(&client, &[], TIMEOUT)
            .await
            .expect("empty describe_topic_configs is Ok")
            .is_empty());
        assert!(start.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn unknown_broker_error_code_is_not_an_enum() {
        // 9999 is not an rd_kafka_resp_err_t variant.
        let e = AdminExtError::from_raw(9999, None).expect("non-zero code is an error");
        assert_eq!(e.code(), RDKafkaErrorCode::Unknown);
        assert!(e.to_string().contains("ERR_9999"), "{e}");
        assert!(AdminExtError::from_raw(0, Some("x".into())).is_none());
        assert_eq!(config_source(1), ConfigSource::Topic);
        assert_eq!(config_source(7), ConfigSource::Unknown);
    }
}
