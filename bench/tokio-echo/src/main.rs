//! A WebSocket echo server on tokio + tokio-tungstenite, as people write it:
//! one task per connection, `next()` then `send()`. A current-thread runtime,
//! so it runs on one core like pushlab and nginx with one worker.
//!
//! `tokio-echo 127.0.0.1:9001` — prints `listening on ADDR`.

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

async fn serve(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            return;
        }
        // Pings are answered by tungstenite itself; data comes back.
        let is_data = matches!(msg, Message::Text(_) | Message::Binary(_));
        if is_data && ws.send(msg).await.is_err() {
            return;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".into());
    let listener = TcpListener::bind(&addr).await.expect("bind");
    println!("listening on {}", listener.local_addr().expect("addr"));
    loop {
        if let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream));
        }
    }
}
