//! `agora-bench-service auth|post|gateway`: one Agora service as its own
//! process, configured from the environment (see `agora_ops::service`).

/// mimalloc: the request path makes many small, short-lived allocations
/// across worker threads, where it is markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let role = std::env::args().nth(1).unwrap_or_default();
    agora_ops::service::run(&role).await
}
