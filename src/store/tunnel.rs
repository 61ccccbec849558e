//! Loopback tunnels that let a driver speak TLS to a server *name* while its bytes
//! go through a Toxiproxy proxy.
//!
//! Toxiproxy forwards bytes, so a TLS client connected to the proxy's address would
//! check the certificate against that address (127.0.0.1) and send no SNI. The
//! MongoDB driver and the AWS SDK both can reach a server through a proxy of their
//! own protocol (SOCKS5; HTTP CONNECT) while keeping the real server name for SNI,
//! certificate verification and (AWS) the signed Host header. A [`Tunnel`] is that
//! proxy, inside this process, on 127.0.0.1: whatever name the driver asks for, it
//! connects to the side's Toxiproxy proxy and then only copies bytes. So the wire
//! through Toxiproxy carries exactly what a direct connection would, and a fault
//! there acts on it: a disabled proxy refuses the tunnel's connection, and the
//! tunnel answers the driver with its protocol's "connection refused" (nothing was
//! sent), as the proxy itself would have.
//!
//! Cassandra needs none: its driver connects by address and sends no SNI, so its
//! TLS verifier checks the configured name instead (`cassandra/tls.rs`).

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The protocol the driver speaks to its proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// SOCKS5 without authentication, CONNECT only (the MongoDB driver).
    Socks5,
    /// HTTP/1.1 `CONNECT host:port` (the AWS SDK's HTTPS proxy support).
    HttpConnect,
}

/// A listening tunnel; dropping it stops the listener and every connection.
#[derive(Debug)]
pub struct Tunnel {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

/// Bound on the driver's side of the handshake (a request line and headers).
const HANDSHAKE: Duration = Duration::from_secs(10);

impl Tunnel {
    /// Listens on an ephemeral loopback port; each connection goes to `upstream`
    /// (`host:port` of the Toxiproxy proxy).
    pub async fn start(protocol: Protocol, upstream: String) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            // Dropped with the accept loop: aborting it ends every connection.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else {
                            // Out of descriptors, say: do not spin on it.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        let upstream = upstream.clone();
                        connections.spawn(async move {
                            let _ = serve(protocol, client, &upstream).await;
                        });
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Self { addr, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One driver connection: its proxy handshake, then bytes both ways.
async fn serve(protocol: Protocol, mut client: TcpStream, upstream: &str) -> std::io::Result<()> {
    client.set_nodelay(true)?;
    let handshake = async {
        match protocol {
            Protocol::Socks5 => socks5_request(&mut client).await,
            Protocol::HttpConnect => connect_request(&mut client).await,
        }
    };
    tokio::time::timeout(HANDSHAKE, handshake)
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    let mut server = match TcpStream::connect(upstream).await {
        Ok(s) => s,
        Err(e) => {
            let refused = match protocol {
                // 5 = connection refused, 1 = general failure.
                Protocol::Socks5 => {
                    let code = if e.kind() == std::io::ErrorKind::ConnectionRefused {
                        5
                    } else {
                        1
                    };
                    vec![5, code, 0, 1, 0, 0, 0, 0, 0, 0]
                }
                Protocol::HttpConnect => {
                    b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n".to_vec()
                }
            };
            let _ = client.write_all(&refused).await;
            return Err(e);
        }
    };
    server.set_nodelay(true)?;
    let ok: &[u8] = match protocol {
        Protocol::Socks5 => &[5, 0, 0, 1, 127, 0, 0, 1, 0, 0],
        Protocol::HttpConnect => b"HTTP/1.1 200 Connection established\r\n\r\n",
    };
    client.write_all(ok).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Reads a SOCKS5 greeting (answering "no authentication") and a CONNECT
/// request; the destination it names is not used (the upstream is fixed).
async fn socks5_request(client: &mut TcpStream) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    if head[0] != 5 {
        return Err(bad("not SOCKS5"));
    }
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods).await?;
    if !methods.contains(&0) {
        client.write_all(&[5, 0xff]).await?;
        return Err(bad("the client offers no unauthenticated method"));
    }
    client.write_all(&[5, 0]).await?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    if request[0] != 5 || request[1] != 1 {
        client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Err(bad("only CONNECT is served"));
    }
    let address_len = match request[3] {
        1 => 4,
        4 => 16,
        3 => {
            let mut n = [0u8; 1];
            client.read_exact(&mut n).await?;
            n[0] as usize
        }
        _ => return Err(bad("unknown address type")),
    };
    let mut rest = vec![0u8; address_len + 2];
    client.read_exact(&mut rest).await?;
    Ok(())
}

/// Reads `CONNECT host:port HTTP/1.1` and its headers, up to the empty line.
async fn connect_request(client: &mut TcpStream) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(bad("request head too long"));
        }
        client.read_exact(&mut byte).await?;
        head.push(byte[0]);
    }
    if !head.starts_with(b"CONNECT ") {
        let _ = client
            .write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n")
            .await;
        return Err(bad("only CONNECT is served"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every connection with what it read, upper-cased.
    async fn echo_server() -> (SocketAddr, JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 5];
                    if s.read_exact(&mut buf).await.is_ok() {
                        let _ = s.write_all(&buf.to_ascii_uppercase()).await;
                    }
                });
            }
        });
        (addr, task)
    }

    #[tokio::test]
    async fn socks5_connects_any_name_to_the_upstream_and_copies_bytes() {
        let (upstream, _server) = echo_server().await;
        let tunnel = Tunnel::start(Protocol::Socks5, upstream.to_string())
            .await
            .unwrap();
        let mut c = TcpStream::connect(tunnel.addr()).await.unwrap();
        c.write_all(&[5, 1, 0]).await.unwrap();
        let mut reply = [0u8; 2];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, [5, 0]);
        let name = b"db.example.com";
        let mut req = vec![5, 1, 0, 3, name.len() as u8];
        req.extend_from_slice(name);
        req.extend_from_slice(&27017u16.to_be_bytes());
        c.write_all(&req).await.unwrap();
        let mut reply = [0u8; 10];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply[1], 0, "succeeded");
        c.write_all(b"hello").await.unwrap();
        let mut echoed = [0u8; 5];
        c.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"HELLO");
    }

    #[tokio::test]
    async fn a_refused_upstream_is_refused_in_each_protocol() {
        // A port nothing listens on: bind, take the number, close.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let socks = Tunnel::start(Protocol::Socks5, closed.to_string())
            .await
            .unwrap();
        let mut c = TcpStream::connect(socks.addr()).await.unwrap();
        c.write_all(&[5, 1, 0, 5, 1, 0, 1, 10, 0, 0, 1, 0x69, 0x89])
            .await
            .unwrap();
        let mut reply = [0u8; 12];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!((reply[2], reply[3]), (5, 5), "SOCKS5 connection refused");
        let http = Tunnel::start(Protocol::HttpConnect, closed.to_string())
            .await
            .unwrap();
        let mut c = TcpStream::connect(http.addr()).await.unwrap();
        c.write_all(b"CONNECT dynamodb.example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 502"), "{text}");
    }

    #[tokio::test]
    async fn http_connect_tunnels_after_the_empty_line() {
        let (upstream, _server) = echo_server().await;
        let tunnel = Tunnel::start(Protocol::HttpConnect, upstream.to_string())
            .await
            .unwrap();
        let mut c = TcpStream::connect(tunnel.addr()).await.unwrap();
        c.write_all(
            b"CONNECT dynamodb.example.com:443 HTTP/1.1\r\nHost: dynamodb.example.com:443\r\n\r\n",
        )
        .await
        .unwrap();
        let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
        let mut reply = vec![0u8; ok.len()];
        c.read_exact(&mut reply).await.unwrap();
        assert_eq!(reply, ok);
        c.write_all(b"abcde").await.unwrap();
        let mut echoed = [0u8; 5];
        c.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ABCDE");
    }
}
