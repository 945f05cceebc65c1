//! Every Kafka response decoder of krawl's own Kafka client (krawl-wire) on bytes a hostile
//! broker chooses: the first byte picks the API and version (see `DECODERS`), the rest is the body
//! (or, for the response header, the frame). A decoder returns a value or an error, never panics,
//! and never allocates more bytes than the input has: a counting allocator measures the heap
//! growth of each run. A DescribeLogDirs, Metadata or ListOffsets body that parses is visited
//! whole, and the visitor sees no more partitions than the bytes could encode.
#![no_main]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use krawl_wire::{
    ApiVersionsResponse, CommittedPartition, ConsumerProtocolAssignment, DescribeGroupsResponse,
    DescribeGroupsVisitor, DescribedGroup, DescribedMember, ListGroupsResponse, ListGroupsVisitor,
    ListedGroup, DescribeLogDirsResponse, ListOffsetsPartition,
    ListOffsetsResponse, ListOffsetsVisitor, LogDirPartition, LogDirsVisitor, MetadataBroker,
    MetadataPartition, MetadataResponse, MetadataTopic, MetadataVisitor, OffsetFetchResponse,
    OffsetFetchVisitor, ResponseHeader, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use libfuzzer_sys::fuzz_target;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let now = IN_USE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(now, Relaxed);
}

// SAFETY: every call is forwarded to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        grew(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        IN_USE.fetch_sub(layout.size(), Relaxed);
        grew(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Clone, Copy, Debug)]
enum Decoder {
    /// ResponseHeader v0 (DescribeLogDirs v1) or v1 (DescribeLogDirs v4), on a whole frame.
    Header(i16),
    ApiVersions(i16),
    /// The answer to an ApiVersions v3 request (KIP-511 fallback to v0).
    ApiVersionsAnswer,
    SaslHandshake(i16),
    SaslAuthenticate(i16),
    DescribeLogDirs(i16),
    Metadata(i16),
    ListOffsets(i16),
    OffsetFetch(i16),
    ListGroups(i16),
    DescribeGroups(i16),
    /// A consumer group member's assignment (the bytes inside DescribeGroups).
    Assignment,
}

/// Indexed by the first input byte modulo 34 (krawl-wire's `write_fuzz_seeds` test writes the
/// seeds in this order).
const DECODERS: [Decoder; 34] = [
    Decoder::Header(1),
    Decoder::Header(4),
    Decoder::ApiVersions(0),
    Decoder::ApiVersions(1),
    Decoder::ApiVersions(2),
    Decoder::ApiVersions(3),
    Decoder::ApiVersionsAnswer,
    Decoder::SaslHandshake(0),
    Decoder::SaslHandshake(1),
    Decoder::SaslAuthenticate(0),
    Decoder::SaslAuthenticate(1),
    Decoder::SaslAuthenticate(2),
    Decoder::DescribeLogDirs(1),
    Decoder::DescribeLogDirs(2),
    Decoder::DescribeLogDirs(3),
    Decoder::DescribeLogDirs(4),
    Decoder::Metadata(1),
    Decoder::Metadata(5),
    Decoder::Metadata(9),
    Decoder::Metadata(12),
    Decoder::ListOffsets(1),
    Decoder::ListOffsets(4),
    Decoder::ListOffsets(6),
    Decoder::ListOffsets(10),
    Decoder::OffsetFetch(8),
    Decoder::OffsetFetch(9),
    Decoder::ListGroups(0),
    Decoder::ListGroups(3),
    Decoder::ListGroups(5),
    Decoder::DescribeGroups(0),
    Decoder::DescribeGroups(4),
    Decoder::DescribeGroups(5),
    Decoder::DescribeGroups(6),
    Decoder::Assignment,
];

/// Counts what it is shown; allocates nothing.
#[derive(Default)]
struct Count {
    dirs: usize,
    partitions: usize,
    bytes: i64,
}

impl LogDirsVisitor for Count {
    fn log_dir(&mut self, _: i16, path: &str) {
        self.dirs += 1;
        self.bytes = self.bytes.wrapping_add(path.len() as i64);
    }
    fn partition(&mut self, p: LogDirPartition<'_>) {
        self.partitions += 1;
        self.bytes = self
            .bytes
            .wrapping_add(p.size)
            .wrapping_add(p.topic.len() as i64);
    }
}

impl MetadataVisitor for Count {
    fn broker(&mut self, b: MetadataBroker<'_>) {
        self.dirs += 1;
        self.bytes = self.bytes.wrapping_add(b.host.len() as i64);
    }
    fn cluster(&mut self, id: Option<&str>, _: i32) {
        self.bytes = self.bytes.wrapping_add(id.map_or(0, str::len) as i64);
    }
    fn topic(&mut self, t: MetadataTopic<'_>) {
        self.bytes = self.bytes.wrapping_add(t.name.len() as i64);
    }
    fn partition(&mut self, p: MetadataPartition<'_>) {
        self.partitions += 1;
        let ids = p.replicas.iter().chain(p.isr.iter());
        self.bytes = ids.fold(self.bytes, |b, id| b.wrapping_add(i64::from(id)));
    }
}

impl ListOffsetsVisitor for Count {
    fn partition(&mut self, p: ListOffsetsPartition<'_>) {
        self.partitions += 1;
        self.bytes = self.bytes.wrapping_add(p.offset);
    }
}

impl OffsetFetchVisitor for Count {
    fn group(&mut self, id: &str) {
        self.dirs += 1;
        self.bytes = self.bytes.wrapping_add(id.len() as i64);
    }
    fn partition(&mut self, p: CommittedPartition<'_>) {
        self.partitions += 1;
        self.bytes = self.bytes.wrapping_add(p.committed_offset);
    }
    fn group_error(&mut self, _: i16) {}
}

impl ListGroupsVisitor for Count {
    fn group(&mut self, g: ListedGroup<'_>) {
        self.dirs += 1;
        self.bytes = self.bytes.wrapping_add(g.group_id.len() as i64);
    }
}

impl DescribeGroupsVisitor for Count {
    fn group(&mut self, g: DescribedGroup<'_>) {
        self.dirs += 1;
        self.bytes = self.bytes.wrapping_add(g.group_id.len() as i64);
    }
    fn member(&mut self, m: DescribedMember<'_>) {
        self.partitions += 1;
        // What the extraction does with an assignment: check it, then walk it.
        if let Ok(a) = ConsumerProtocolAssignment::parse(m.member_assignment) {
            for (topic, partitions) in a.topics() {
                self.bytes = self.bytes.wrapping_add(topic.len() as i64);
                self.bytes = partitions
                    .iter()
                    .fold(self.bytes, |b, p| b.wrapping_add(i64::from(p)));
            }
        }
    }
}

fn decode(decoder: Decoder, body: &[u8]) {
    match decoder {
        Decoder::Header(version) => {
            if let Ok((_, rest)) = ResponseHeader::split::<DescribeLogDirsResponse>(body, version) {
                assert!(rest.len() + 4 <= body.len());
            }
        }
        Decoder::ApiVersions(version) => {
            if let Ok(r) = ApiVersionsResponse::decode(body, version) {
                assert!(r.api_keys.len() * 6 <= body.len());
                let _ = r.pick(35, 1, 4);
            }
        }
        Decoder::ApiVersionsAnswer => {
            if let Ok((r, version)) = ApiVersionsResponse::decode_answer(body, 3) {
                assert!(version == 0 || version == 3);
                assert!(r.api_keys.len() * 6 <= body.len());
            }
        }
        Decoder::SaslHandshake(version) => {
            if let Ok(r) = SaslHandshakeResponse::decode(body, version) {
                assert_eq!(r.mechanisms.iter().count(), r.mechanisms.len());
            }
        }
        Decoder::SaslAuthenticate(version) => {
            if let Ok(r) = SaslAuthenticateResponse::decode(body, version) {
                assert!(r.auth_bytes.len() <= body.len());
            }
        }
        Decoder::DescribeLogDirs(version) => {
            if let Ok(r) = DescribeLogDirsResponse::parse(body, version) {
                let mut count = Count::default();
                r.visit(&mut count)
                    .expect("a response that parsed visits without error");
                // The smallest partition is 21 bytes, the smallest log dir 5.
                assert!(count.partitions * 21 <= body.len(), "{}", count.partitions);
                assert!(count.dirs * 5 <= body.len(), "{}", count.dirs);
            }
        }
        Decoder::Metadata(version) => {
            if let Ok(r) = MetadataResponse::parse(body, version) {
                let mut count = Count::default();
                r.visit(&mut count)
                    .expect("a response that parsed visits without error");
                // The smallest partition is 13 bytes (v9+), the smallest broker 11.
                assert!(count.partitions * 13 <= body.len(), "{}", count.partitions);
                assert!(count.dirs * 11 <= body.len(), "{}", count.dirs);
            }
        }
        Decoder::ListOffsets(version) => {
            if let Ok(r) = ListOffsetsResponse::parse(body, version) {
                let mut count = Count::default();
                ListOffsetsResponse::visit(&r, &mut count)
                    .expect("a response that parsed visits without error");
                // The smallest partition is 22 bytes.
                assert!(count.partitions * 22 <= body.len(), "{}", count.partitions);
            }
        }
        Decoder::OffsetFetch(version) => {
            if let Ok(r) = OffsetFetchResponse::parse(body, version) {
                let mut count = Count::default();
                OffsetFetchResponse::visit(&r, &mut count)
                    .expect("a response that parsed visits without error");
                // The smallest partition is 20 bytes, the smallest group 5.
                assert!(count.partitions * 20 <= body.len(), "{}", count.partitions);
                assert!(count.dirs * 5 <= body.len(), "{}", count.dirs);
            }
        }
        Decoder::ListGroups(version) => {
            if let Ok(r) = ListGroupsResponse::parse(body, version) {
                let mut count = Count::default();
                r.visit(&mut count)
                    .expect("a response that parsed visits without error");
                // The smallest group is 3 bytes (v3: two empty compact strings, tags).
                assert!(count.dirs * 3 <= body.len(), "{}", count.dirs);
            }
        }
        Decoder::DescribeGroups(version) => {
            if let Ok(r) = DescribeGroupsResponse::parse(body, version) {
                let mut count = Count::default();
                r.visit(&mut count)
                    .expect("a response that parsed visits without error");
                // The smallest group is 8 bytes (v5), the smallest member 6.
                assert!(count.dirs * 8 <= body.len(), "{}", count.dirs);
                assert!(count.partitions * 6 <= body.len(), "{}", count.partitions);
            }
        }
        Decoder::Assignment => {
            if let Ok(a) = ConsumerProtocolAssignment::parse(body) {
                let topics = a.topics().count();
                // The smallest topic is 6 bytes.
                assert!(topics * 6 <= body.len(), "{topics}");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let decoder = DECODERS[usize::from(pick) % DECODERS.len()];
    let base = IN_USE.load(Relaxed);
    PEAK.store(base, Relaxed);
    decode(decoder, body);
    let grown = PEAK.load(Relaxed) - base;
    assert!(
        grown <= body.len(),
        "{decoder:?} allocated {grown} bytes for a {}-byte body",
        body.len()
    );
});
