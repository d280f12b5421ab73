// Tells the crate which Ruby it is built for (`ruby_gte_3_3` and the like,
// from rb-sys's metadata), so features that need a newer Ruby's C API are
// chosen at build time.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _ = rb_sys_env::activate()?;
    Ok(())
}
