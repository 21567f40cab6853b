//! Optional download (cargo feature `download`) of MNIST, Fashion-MNIST, CIFAR-10 and CIFAR-100
//! from their official URLs into a cache folder, checksums verified: the [`Downloader`]. The
//! URLs, file names and checksums of each data set ([`Remote`]) are the
//! [`catalog`](crate::catalog)'s, re-exported here.
//!
//! ```no_run
//! # fn main() -> Result<(), wt_data::DataError> {
//! use wt_data::download::{Downloader, Remote};
//! use wt_data::{CifarDataset, MnistDataset, Split};
//! let dl = Downloader::new(wt_data::locate::cache_dir());
//! let mnist = MnistDataset::new(dl.fetch(Remote::Mnist)?, Split::Train)?;
//! let cifar = CifarDataset::cifar10(dl.fetch(Remote::Cifar10)?, Split::Test)?;
//! # Ok(()) }
//! ```
//!
//! Each file is streamed into a temporary file beside its final name while its checksum is
//! computed, and renamed only when the checksum matches, so the cache never holds a partial or
//! corrupt download under the official name. A file already in the cache is checked again
//! and kept when it matches (no network access), downloaded again when it does not. The
//! published checksums of these files are MD5s (LeCun's and Zalando's pages as used by
//! torchvision, Krizhevsky's CIFAR page); [`Checksum::Sha256`] is there for files whose
//! SHA-256 the user knows.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Digest;

use crate::error::{DataError, Result};

pub use crate::catalog::{Checksum, Remote, RemoteFile};

impl Checksum {
    fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Md5(_) => "md5",
            Checksum::Sha256(_) => "sha256",
        }
    }

    fn expected(&self) -> String {
        match self {
            Checksum::Md5(h) | Checksum::Sha256(h) => h.to_ascii_lowercase(),
        }
    }

    fn hasher(&self) -> Hasher {
        match self {
            Checksum::Md5(_) => Hasher::Md5(md5::Md5::new()),
            Checksum::Sha256(_) => Hasher::Sha256(sha2::Sha256::new()),
        }
    }
}

enum Hasher {
    Md5(md5::Md5),
    Sha256(sha2::Sha256),
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Sha256(h) => h.update(bytes),
        }
    }

    fn hex(self) -> String {
        let digest: Vec<u8> = match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        };
        digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The hex digest of `bytes` under `checksum`'s algorithm.
pub fn digest_hex(checksum: &Checksum, bytes: &[u8]) -> String {
    let mut h = checksum.hasher();
    h.update(bytes);
    h.hex()
}

/// Downloads data sets into a cache folder.
#[derive(Debug, Clone)]
pub struct Downloader {
    cache: PathBuf,
    base_urls: Option<Vec<String>>,
    agent: ureq::Agent,
}

impl Downloader {
    /// Downloads into `cache` (created when missing), from the official URLs.
    pub fn new(cache: impl Into<PathBuf>) -> Self {
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .http_status_as_error(true)
            .build();
        Self {
            cache: cache.into(),
            base_urls: None,
            agent: config.into(),
        }
    }

    /// Downloads from `url` (a mirror, or a local server) instead of the official URLs: file
    /// `name` is fetched from `<url>/<name>`. Checksums are still the official ones.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_urls = Some(vec![url.into()]);
        self
    }

    /// The cache folder.
    pub fn cache_dir(&self) -> &Path {
        &self.cache
    }

    /// Makes sure the data set's files are in the cache, downloading what is missing or
    /// corrupt, and returns the path to give its reader: the folder of the four IDX files for
    /// MNIST and Fashion-MNIST ([`MnistDataset::new`](crate::MnistDataset::new)), the
    /// `.tar.gz` archive for CIFAR ([`CifarDataset::cifar10`](crate::CifarDataset::cifar10),
    /// [`cifar100`](crate::CifarDataset::cifar100)).
    pub fn fetch(&self, remote: Remote) -> Result<PathBuf> {
        let mirrors: Vec<String> = match &self.base_urls {
            Some(urls) => urls.clone(),
            None => remote.mirrors().iter().map(|s| s.to_string()).collect(),
        };
        let dir = self.cache.join(remote.folder());
        let files = remote.files();
        self.fetch_files(&mirrors, &files, &dir)?;
        Ok(match remote {
            Remote::Mnist | Remote::FashionMnist => dir,
            Remote::Cifar10 | Remote::Cifar100 => dir.join(&files[0].name),
        })
    }

    /// Makes sure each of `files` is in `dir` with its checksum, downloading each missing or
    /// corrupt one from the first of `mirrors` that serves it correctly.
    pub fn fetch_files(&self, mirrors: &[String], files: &[RemoteFile], dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        for file in files {
            let dest = dir.join(&file.name);
            if dest.is_file() && verify_file(&dest, &file.checksum)? {
                continue;
            }
            let mut failures = Vec::new();
            for base in mirrors {
                let url = format!("{}/{}", base.trim_end_matches('/'), file.name);
                match self.fetch_file(&url, &file.checksum, &dest) {
                    Ok(()) => break,
                    Err(e) => failures.push(e),
                }
            }
            if failures.len() == mirrors.len() {
                return Err(match failures.len() {
                    0 => DataError::file(&dest, "no URL to download from"),
                    1 => failures.remove(0),
                    _ => DataError::file(
                        &dest,
                        format!(
                            "every mirror failed: {}",
                            failures
                                .iter()
                                .map(|e| e.to_string())
                                .collect::<Vec<_>>()
                                .join("; ")
                        ),
                    ),
                });
            }
        }
        Ok(())
    }

    /// Downloads `url` to `dest`: streamed into a temporary file beside `dest`, renamed to
    /// `dest` only when its checksum matches. Errors name the URL (or the file for local
    /// I/O), and for a wrong checksum the expected and the computed digests.
    pub fn fetch_file(&self, url: &str, checksum: &Checksum, dest: &Path) -> Result<()> {
        let net = |e: ureq::Error| match e {
            ureq::Error::StatusCode(code) => {
                DataError::file(url, format!("HTTP status {code} (expected 200)"))
            }
            other => DataError::file(url, format!("download failed: {other}")),
        };
        let response = self.agent.get(url).call().map_err(net)?;
        let mut body = response.into_body().into_reader();
        let name = dest
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("download");
        let part = dest.with_file_name(format!(".{name}.part-{}", std::process::id()));
        let guard = RemoveOnDrop(&part);
        let mut out = std::fs::File::create(&part).map_err(|e| DataError::io(&part, e))?;
        let mut hasher = checksum.hasher();
        let (mut buf, mut total) = (vec![0u8; 1 << 16], 0u64);
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DataError::file(
                        url,
                        format!("download interrupted after {total} bytes: {e}"),
                    ));
                }
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])
                .map_err(|e| DataError::io(&part, e))?;
            total += n as u64;
        }
        out.sync_all().map_err(|e| DataError::io(&part, e))?;
        drop(out);
        let (expected, got) = (checksum.expected(), hasher.hex());
        if got != expected {
            return Err(DataError::file(
                url,
                format!(
                    "checksum mismatch: expected {alg} {expected}, got {alg} {got} ({total} bytes); not saved",
                    alg = checksum.algorithm()
                ),
            ));
        }
        std::fs::rename(&part, dest).map_err(|e| DataError::io(dest, e))?;
        std::mem::forget(guard);
        Ok(())
    }
}

/// Whether the file at `path` has `checksum`.
pub fn verify_file(path: &Path, checksum: &Checksum) -> Result<bool> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut hasher = checksum.hasher();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DataError::io(path, e)),
        }
    }
    Ok(hasher.hex() == checksum.expected())
}

/// Removes a temporary file when a download fails part-way.
struct RemoveOnDrop<'a>(&'a Path);

impl Drop for RemoveOnDrop<'_> {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::{TempDir, write_cifar10_archive};
    use crate::{CifarDataset, MnistDataset, Split};
    use std::collections::HashMap;
    use std::io::BufRead;
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    /// What the test server answers for a path.
    #[derive(Clone)]
    enum Reply {
        Ok(Vec<u8>),
        /// Announces the full length, sends only the first `n` bytes, then closes.
        CutShort(Vec<u8>, usize),
    }

    /// A plain HTTP/1.1 server on 127.0.0.1 answering GET requests from `files` (404 for any
    /// other path); counts the requests it answers.
    struct Server {
        base: String,
        files: Arc<Mutex<HashMap<String, Reply>>>,
        requests: Arc<AtomicUsize>,
    }

    impl Server {
        fn start() -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let files: Arc<Mutex<HashMap<String, Reply>>> = Arc::default();
            let requests = Arc::new(AtomicUsize::new(0));
            let (f, r) = (files.clone(), requests.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        continue;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    loop {
                        let mut header = String::new();
                        match reader.read_line(&mut header) {
                            Ok(0) | Err(_) => break,
                            Ok(_) if header == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    r.fetch_add(1, Ordering::SeqCst);
                    let reply = f.lock().unwrap().get(&path).cloned();
                    let (head, body): (String, &[u8]) = match &reply {
                        Some(Reply::Ok(b)) => (format!("200 OK\r\nContent-Length: {}", b.len()), b),
                        Some(Reply::CutShort(b, n)) => {
                            (format!("200 OK\r\nContent-Length: {}", b.len()), &b[..*n])
                        }
                        None => (
                            "404 Not Found\r\nContent-Length: 9".to_string(),
                            b"not found",
                        ),
                    };
                    let _ = write!(stream, "HTTP/1.1 {head}\r\nConnection: close\r\n\r\n");
                    let _ = stream.write_all(body);
                }
            });
            Self {
                base,
                files,
                requests,
            }
        }

        fn serve(&self, path: &str, reply: Reply) {
            self.files.lock().unwrap().insert(path.to_string(), reply);
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn digests_match_known_answers() {
        // RFC 1321 and FIPS 180-2 test vectors.
        let md5 = Checksum::Md5(String::new());
        let sha = Checksum::Sha256(String::new());
        assert_eq!(digest_hex(&md5, b"abc"), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(digest_hex(&md5, b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(
            digest_hex(&sha, b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // The raw MNIST test labels in ../shared/data match the published MD5 of the
        // uncompressed official file.
        let raw = crate::idx::read_maybe_gzip(
            &crate::testdata::shared_data("mnist").join("t10k-labels-idx1-ubyte.gz"),
        )
        .unwrap();
        assert_eq!(digest_hex(&md5, &raw), "27ae3e4e09519cfbb04c329615203637");
    }

    #[test]
    fn downloads_a_cifar_archive_from_a_local_server_and_reads_it() {
        let tmp = TempDir::new("dl-ok");
        let archive = tmp.path().join("fixture.tar.gz");
        let test_labels = write_cifar10_archive(&archive, 3);
        let bytes = std::fs::read(&archive).unwrap();
        let server = Server::start();
        server.serve("/data/cifar-10-binary.tar.gz", Reply::Ok(bytes.clone()));
        let sha = Checksum::Sha256(digest_hex(&Checksum::Sha256(String::new()), &bytes));
        let files = [RemoteFile {
            name: "cifar-10-binary.tar.gz".into(),
            checksum: sha.clone(),
        }];
        let cache = tmp.path().join("cache");
        let dl = Downloader::new(&cache);
        // The first mirror lacks the file (404), the second serves it.
        let mirrors = [
            format!("{}/missing/", server.base),
            format!("{}/data", server.base),
        ];
        dl.fetch_files(&mirrors, &files, &cache).unwrap();
        assert_eq!(files_in(&cache), ["cifar-10-binary.tar.gz"]);
        let test =
            CifarDataset::cifar10(cache.join("cifar-10-binary.tar.gz"), Split::Test).unwrap();
        assert_eq!(test.labels(), &test_labels[..]);
        assert_eq!(server.requests(), 2);

        // Cached and intact: no request. Corrupted in the cache: downloaded again.
        dl.fetch_files(&mirrors[1..], &files, &cache).unwrap();
        assert_eq!(server.requests(), 2);
        std::fs::write(cache.join("cifar-10-binary.tar.gz"), b"bit rot").unwrap();
        dl.fetch_files(&mirrors[1..], &files, &cache).unwrap();
        assert_eq!(server.requests(), 3);
        assert!(verify_file(&cache.join("cifar-10-binary.tar.gz"), &sha).unwrap());

        // MD5 checksums (upper-case hex accepted), through `fetch` with the base URL overridden:
        // MNIST-format files served under the official names, checked against their own MD5s.
        let mnist = crate::testdata::shared_data("mnist");
        let mut md5_files = Vec::new();
        for name in ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"] {
            let b = std::fs::read(mnist.join(name)).unwrap();
            let md5 = digest_hex(&Checksum::Md5(String::new()), &b).to_uppercase();
            server.serve(&format!("/mnist/{name}"), Reply::Ok(b));
            md5_files.push(RemoteFile {
                name: name.into(),
                checksum: Checksum::Md5(md5),
            });
        }
        let dir = cache.join("mnist-copy");
        dl.fetch_files(&[format!("{}/mnist", server.base)], &md5_files, &dir)
            .unwrap();
        let t10k = MnistDataset::new(&dir, Split::Test).unwrap();
        assert_eq!(&t10k.labels()[..5], &[7, 2, 1, 0, 4]);
    }

    #[test]
    fn wrong_checksum_404_and_cut_short_downloads_are_named_errors_and_leave_nothing() {
        let tmp = TempDir::new("dl-bad");
        let archive = tmp.path().join("fixture.tar.gz");
        write_cifar10_archive(&archive, 2);
        let bytes = std::fs::read(&archive).unwrap();
        let got_md5 = digest_hex(&Checksum::Md5(String::new()), &bytes);
        let server = Server::start();
        // A fixture under the official CIFAR-10 name: not the official archive.
        server.serve("/cifar-10-binary.tar.gz", Reply::Ok(bytes.clone()));
        let cache = tmp.path().join("cache");
        let dl = Downloader::new(&cache).base_url(format!("{}/", server.base));
        let err = dl.fetch(Remote::Cifar10).unwrap_err().to_string();
        let url = format!("{}/cifar-10-binary.tar.gz", server.base);
        assert!(err.starts_with(&url), "{err}");
        assert!(
            err.contains("checksum mismatch")
                && err.contains("expected md5 c32a1d4ab5d03f1284b67883e8d87530")
                && err.contains(&format!("got md5 {got_md5}")),
            "{err}"
        );
        assert!(files_in(&cache.join("cifar-10")).is_empty());

        // 404: names the URL and the status.
        let err = dl.fetch(Remote::Mnist).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}/train-images-idx3-ubyte.gz", server.base))
                && err.contains("404"),
            "{err}"
        );
        assert!(files_in(&cache.join("mnist")).is_empty());

        // The connection closes before the announced length: an error, no partial file.
        server.serve("/short.bin", Reply::CutShort(bytes.clone(), 100));
        let files = [RemoteFile {
            name: "short.bin".into(),
            checksum: Checksum::Sha256(digest_hex(&Checksum::Sha256(String::new()), &bytes)),
        }];
        let dir = cache.join("short");
        let err = dl
            .fetch_files(std::slice::from_ref(&server.base), &files, &dir)
            .unwrap_err()
            .to_string();
        assert!(err.contains("short.bin"), "{err}");
        assert!(files_in(&dir).is_empty(), "{:?}", files_in(&dir));

        // Nothing listening: an error naming the URL.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", l.local_addr().unwrap())
        };
        let err = Downloader::new(&cache)
            .base_url(&closed)
            .fetch(Remote::Cifar100)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{closed}/cifar-100-binary.tar.gz")),
            "{err}"
        );
    }
}
