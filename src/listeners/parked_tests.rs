use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::apps::HttpPersistentSettings;
use pingora::http::ResponseHeader;
use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::*;

/// An HTTP app that answers each request with its path, and counts the
/// `process_new_http` calls made and still running.
#[derive(Default)]
struct Echo {
    calls: AtomicUsize,
    running: AtomicUsize,
    /// `keepalive_request_limit`, when set.
    options: Option<pingora::apps::HttpServerOptions>,
}

struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl HttpServerApp for Echo {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        _shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.running.fetch_add(1, Ordering::SeqCst);
        let _running = Running(&self.running);
        if !session.read_request().await.ok()? {
            return None;
        }
        let body = Bytes::from(session.req_header().uri.path().to_owned());
        let mut head = ResponseHeader::build(200, None).ok()?;
        head.insert_header("Content-Length", body.len()).ok()?;
        session.write_response_header(Box::new(head)).await.ok()?;
        session.write_response_body(body, true).await.ok()?;
        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(_) => None,
        }
    }

    fn server_options(&self) -> Option<&pingora::apps::HttpServerOptions> {
        self.options.as_ref()
    }
}

/// A connection served by `serve` on loopback: the client's end, the
/// server's task and the shutdown switch.
struct Connection {
    client: TcpStream,
    served: tokio::task::JoinHandle<()>,
    shutdown: watch::Sender<bool>,
}

async fn connect<F, Fut>(serve: F) -> Connection
where
    F: FnOnce(Stream, ShutdownWatch) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let stream: Stream = Box::new(L4Stream::from(server));
    let (shutdown, watch) = watch::channel(false);
    let served = tokio::spawn(serve(stream, watch));
    Connection {
        client,
        served,
        shutdown,
    }
}

async fn parked(app: &Arc<Echo>) -> Connection {
    let parked = Arc::new(Parked(app.clone()));
    connect(|stream, watch| async move {
        ServerApp::process_new(&parked, stream, &watch).await;
    })
    .await
}

/// Reads one answer of `Echo` (its head and body) and returns the body.
async fn answer(client: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(client.read(&mut byte).await.unwrap(), 1, "closed in a head");
        got.push(byte[0]);
    }
    let head = String::from_utf8(got).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    client.read_exact(&mut body).await.unwrap();
    String::from_utf8(body).unwrap()
}

async fn get(client: &mut TcpStream, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: example\r\n\r\n");
    client.write_all(request.as_bytes()).await.unwrap();
    answer(client).await
}

/// Waits (up to 5 s) until `count` reads `want`.
async fn until(count: &AtomicUsize, want: usize) {
    let start = Instant::now();
    while count.load(Ordering::SeqCst) != want {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "never reached {want}"
        );
        tokio::task::yield_now().await;
    }
}

/// How long an idle connection is watched for a request future made
/// without a request: Pingora's loop makes it within microseconds.
const WATCHED: Duration = Duration::from_millis(200);

/// Asserts that `count` stays `want` for [`WATCHED`].
async fn stays(count: &AtomicUsize, want: usize) {
    let start = Instant::now();
    while start.elapsed() < WATCHED {
        assert_eq!(count.load(Ordering::SeqCst), want);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn an_idle_connection_holds_no_request_future_until_its_next_request() {
    let app = Arc::new(Echo::default());
    let mut conn = parked(&app).await;
    assert_eq!(get(&mut conn.client, "/first").await, "/first");
    until(&app.running, 0).await;
    stays(&app.calls, 1).await;
    // The next request's first byte wakes it, and is not lost.
    assert_eq!(get(&mut conn.client, "/second").await, "/second");
    assert_eq!(app.calls.load(Ordering::SeqCst), 2);
    // A head that arrives in pieces, its first byte alone.
    conn.client.write_all(b"G").await.unwrap();
    until(&app.calls, 3).await;
    conn.client
        .write_all(b"ET /third HTTP/1.1\r\n")
        .await
        .unwrap();
    conn.client
        .write_all(b"Host: example\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(answer(&mut conn.client).await, "/third");
}

/// Why [`Parked`] exists: Pingora's own loop starts the next request's
/// future (and its head buffer) as soon as a request is answered. When
/// this fails, Pingora parks idle connections itself and `Parked` can go
/// (see the module's text).
#[tokio::test]
async fn pingoras_own_loop_holds_a_request_future_while_idle() {
    let app = Arc::new(Echo::default());
    let served = app.clone();
    let mut conn = connect(|stream, watch| async move {
        ServerApp::process_new(&served, stream, &watch).await;
    })
    .await;
    assert_eq!(get(&mut conn.client, "/first").await, "/first");
    until(&app.calls, 2).await;
    assert_eq!(app.running.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_idle_connection_ends_when_its_client_closes_or_the_service_shuts_down() {
    // The client closes it.
    let app = Arc::new(Echo::default());
    let mut conn = parked(&app).await;
    assert_eq!(get(&mut conn.client, "/").await, "/");
    conn.client.shutdown().await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn.served)
        .await
        .expect("the connection ended")
        .unwrap();
    assert_eq!(app.calls.load(Ordering::SeqCst), 1);

    // The service shuts down: dropped at once, the client sees the close.
    let mut conn = parked(&app).await;
    assert_eq!(get(&mut conn.client, "/").await, "/");
    until(&app.running, 0).await;
    conn.shutdown.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), conn.served)
        .await
        .expect("the connection ended at shutdown")
        .unwrap();
    let mut rest = Vec::new();
    conn.client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(app.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_next_head_already_started_at_shutdown_is_answered() {
    let app = Arc::new(Echo::default());
    let mut conn = parked(&app).await;
    assert_eq!(get(&mut conn.client, "/").await, "/");
    conn.client
        .write_all(b"GET /late HTTP/1.1\r\n")
        .await
        .unwrap();
    until(&app.calls, 2).await;
    conn.shutdown.send(true).unwrap();
    conn.client
        .write_all(b"Host: example\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(answer(&mut conn.client).await, "/late");
}

/// How many of five requests, sent one after the other on one
/// connection, are answered.
async fn answered_of_five(mut conn: Connection) -> usize {
    for n in 0..5 {
        let request = format!("GET /{n} HTTP/1.1\r\nHost: example\r\n\r\n");
        if conn.client.write_all(request.as_bytes()).await.is_err() {
            return n;
        }
        let mut first = [0u8; 1];
        match conn.client.peek(&mut first).await {
            Ok(1) => assert_eq!(answer(&mut conn.client).await, format!("/{n}")),
            _ => return n,
        }
    }
    5
}

#[tokio::test]
async fn the_keepalive_request_limit_holds_as_in_pingoras_loop() {
    let limited = || {
        let mut options = pingora::apps::HttpServerOptions::default();
        options.keepalive_request_limit = Some(2);
        Arc::new(Echo {
            options: Some(options),
            ..Echo::default()
        })
    };
    let app = limited();
    let by_parked = answered_of_five(parked(&app).await).await;
    let app = limited();
    let pingoras = answered_of_five(
        connect(|stream, watch| async move {
            ServerApp::process_new(&app, stream, &watch).await;
        })
        .await,
    )
    .await;
    assert!(pingoras < 5, "the limit holds in Pingora's loop");
    assert_eq!(by_parked, pingoras);
}
