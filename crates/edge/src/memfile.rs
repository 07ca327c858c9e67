//! Large cached objects in sealed memory files, sent with `sendfile(2)` on plain TCP.
//!
//! An edge joins an object's DATA frames into one buffer once when it is filled (never per
//! viewer). For an object of at least [`MIN_LEN`] bytes that buffer is a memory file
//! (`memfd`) instead of heap memory: written once, sealed against any change, and mapped
//! read-only, so the object is still one `Bytes` shared by every response over every protocol.
//! On HTTP/1.1 without TLS, [`SendfileTcp`] recognises a write of such bytes and has the kernel
//! send them from the file's pages (`sendfile`), instead of copying them from memory into the
//! socket (the copy that was a third of the edge's CPU serving segments). A response's headers
//! go out with `MSG_MORE`, so they share the first packet with the body.
//!
//! Pages the kernel still holds for a send stay valid after the object is evicted: the file is
//! sealed, so nobody rewrites them, and the kernel keeps its own page references.

use bytes::Bytes;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;

/// Objects smaller than this stay on the heap (16 KiB: a larger object arrives as several
/// HTTP/2 DATA frames, which are joined into one buffer anyway).
pub const MIN_LEN: usize = 16 * 1024;

/// Memory files alive at most: each holds a file descriptor, and descriptors are also what
/// accepting viewers needs. Past this (or a quarter of the process's descriptor limit, if
/// that is lower), objects stay on the heap.
pub const MAX_LIVE: usize = 4096;

/// [`MAX_LIVE`], or a quarter of the soft `RLIMIT_NOFILE` when that is lower.
fn max_live() -> usize {
    static MAX: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let quarter = limit.current.map_or(u64::MAX, |n| n / 4);
        quarter.min(MAX_LIVE as u64) as usize
    })
}

/// A sealed, read-only mapped memory file holding one object.
struct MemFile {
    map: memmap2::Mmap,
}

impl AsRef<[u8]> for MemFile {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        REGISTRY.write().remove(&(self.map.as_ptr() as usize));
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Mapped files by start address: (length, file).
static REGISTRY: RwLock<BTreeMap<usize, (usize, Arc<File>)>> = RwLock::new(BTreeMap::new());
/// Memory files alive (a write skips the lookup while there are none).
static LIVE: AtomicUsize = AtomicUsize::new(0);

/// Joins `chunks` into one memory file and returns it as `Bytes`.
pub fn from_chunks(chunks: &[Bytes]) -> io::Result<Bytes> {
    use rustix::fs::{MemfdFlags, SealFlags};
    let len: usize = chunks.iter().map(Bytes::len).sum();
    if len == 0 {
        return Ok(Bytes::new());
    }
    if LIVE.load(Ordering::Relaxed) >= max_live() {
        return Err(io::Error::other("memory file limit reached"));
    }
    let fd = rustix::fs::memfd_create(
        "ferrocast-object",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )?;
    let file = File::from(fd);
    file.set_len(len as u64)?;
    let mut at = 0u64;
    for c in chunks {
        file.write_all_at(c, at)?;
        at += c.len() as u64;
    }
    rustix::fs::fcntl_add_seals(
        &file,
        SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
    )?;
    // SAFETY: `Mmap::map` is unsafe because another writer could change or truncate the file
    // under the mapping. This file is an anonymous memory file of this process, sealed above
    // against writes, shrinking and growing (and against removing those seals): no one, this
    // process included, can change its contents or length while it is mapped.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file)? };
    REGISTRY
        .write()
        .insert(map.as_ptr() as usize, (len, Arc::new(file)));
    LIVE.fetch_add(1, Ordering::Relaxed);
    Ok(Bytes::from_owner(MemFile { map }))
}

/// The memory file holding the start of `buf`, the offset there, and how many of `buf`'s bytes
/// it holds.
fn lookup(buf: &[u8]) -> Option<(Arc<File>, u64, usize)> {
    if buf.is_empty() || LIVE.load(Ordering::Relaxed) == 0 {
        return None;
    }
    let p = buf.as_ptr() as usize;
    let reg = REGISTRY.read();
    let (&start, (len, file)) = reg.range(..=p).next_back()?;
    let off = p - start;
    (off < *len).then(|| (file.clone(), off as u64, buf.len().min(len - off)))
}

/// A plain TCP stream whose writes of memory-file bytes go out with `sendfile`.
pub struct SendfileTcp {
    tcp: TcpStream,
    sent: prometheus::IntCounter,
}

impl SendfileTcp {
    /// Wraps `tcp`; bytes sent with `sendfile` are counted in `sent`.
    pub fn new(tcp: TcpStream, sent: prometheus::IntCounter) -> Self {
        Self { tcp, sent }
    }

    /// Runs the non-blocking write `op` once the socket is writable, until it does not block.
    fn poll_writable(
        &self,
        cx: &mut Context<'_>,
        mut op: impl FnMut() -> rustix::io::Result<usize>,
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.tcp.poll_write_ready(cx))?;
            match self
                .tcp
                .try_io(Interest::WRITABLE, || op().map_err(io::Error::from))
            {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                done => return Poll::Ready(done),
            }
        }
    }

    /// Sends `n` bytes of `file` from `off` with `sendfile`.
    fn poll_sendfile(
        &self,
        cx: &mut Context<'_>,
        file: &File,
        mut off: u64,
        n: usize,
    ) -> Poll<io::Result<usize>> {
        let sent = ready!(self.poll_writable(cx, || {
            rustix::fs::sendfile(&self.tcp, file, Some(&mut off), n)
        }))?;
        self.sent.inc_by(sent as u64);
        Poll::Ready(Ok(sent))
    }

    /// Writes `bufs` (none of them in a memory file) with `MSG_MORE`: more follows at once.
    fn poll_send_more(
        &self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        use rustix::net::{SendAncillaryBuffer, SendFlags};
        self.poll_writable(cx, || {
            rustix::net::sendmsg(
                &self.tcp,
                bufs,
                &mut SendAncillaryBuffer::default(),
                SendFlags::MORE | SendFlags::NOSIGNAL,
            )
        })
    }
}

impl AsyncRead for SendfileTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SendfileTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match lookup(buf) {
            Some((file, off, n)) => self.poll_sendfile(cx, &file, off, n),
            None => Pin::new(&mut self.tcp).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let bufs = match bufs.iter().position(|b| !b.is_empty()) {
            Some(i) => &bufs[i..],
            None => return Poll::Ready(Ok(0)),
        };
        if let Some((file, off, n)) = lookup(&bufs[0]) {
            return self.poll_sendfile(cx, &file, off, n);
        }
        // the plain run up to the first memory-file buffer; that one follows at once
        match bufs[1..].iter().position(|b| lookup(b).is_some()) {
            Some(k) => self.poll_send_more(cx, &bufs[..=k]),
            None => Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn chunks() -> Vec<Bytes> {
        (0..40u32)
            .map(|i| Bytes::from((0..1000).map(|j| (i * 7 + j) as u8).collect::<Vec<_>>()))
            .collect()
    }

    #[test]
    fn an_object_is_one_sealed_mapping() {
        let c = chunks();
        let joined: Vec<u8> = c.iter().flat_map(|b| b.iter().copied()).collect();
        let b = from_chunks(&c).unwrap();
        assert_eq!(&b[..], &joined[..]);
        assert!(lookup(&b).is_some());
        assert!(lookup(&b[39_999..]).is_some());
        let (_, off, n) = lookup(&b.slice(1000..)).unwrap();
        assert_eq!((off, n), (1000, 39_000));
        assert!(lookup(&joined).is_none());
        // slices share the mapping; it goes when the last one does
        let tail = b.slice(30_000..);
        let p = b.as_ptr() as usize;
        drop(b);
        assert!(lookup(&tail).is_some());
        drop(tail);
        assert!(!REGISTRY.read().contains_key(&p));
        assert!(from_chunks(&[]).unwrap().is_empty());
    }

    #[tokio::test]
    async fn headers_and_a_mapped_body_arrive_intact() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = chunks();
        let body = from_chunks(&c).unwrap();
        let want: Vec<u8> = b"HEAD\r\n"
            .iter()
            .copied()
            .chain(body.iter().copied())
            .chain(b"tail".iter().copied())
            .collect();
        let sent = prometheus::IntCounter::new("sent", "sent").unwrap();
        let counter = sent.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut s = SendfileTcp::new(tcp, counter);
            let head = Bytes::from_static(b"HEAD\r\n");
            let tail = Bytes::from_static(b"tail");
            let parts = [head, body.slice(..10_000), body.slice(10_000..), tail];
            // as hyper writes: vectored, advancing over what each call took
            let (mut i, mut skip) = (0, 0);
            while i < parts.len() {
                let slices: Vec<IoSlice<'_>> = std::iter::once(&parts[i][skip..])
                    .chain(parts[i + 1..].iter().map(|p| &p[..]))
                    .map(IoSlice::new)
                    .collect();
                let mut n = s.write_vectored(&slices).await.unwrap();
                while n > 0 {
                    let left = parts[i].len() - skip;
                    if n >= left {
                        n -= left;
                        i += 1;
                        skip = 0;
                    } else {
                        skip += n;
                        n = 0;
                    }
                }
            }
            s.shutdown().await.unwrap();
        });
        let mut got = Vec::new();
        TcpStream::connect(addr)
            .await
            .unwrap()
            .read_to_end(&mut got)
            .await
            .unwrap();
        server.await.unwrap();
        assert_eq!(got, want);
        assert_eq!(sent.get(), 40_000, "the mapped body went out with sendfile");
    }
}
