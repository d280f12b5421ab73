# frozen_string_literal: true

require_relative "lib/killer/version"

Gem::Specification.new do |spec|
  spec.name = "sidekiq-killer"
  spec.version = Killer::VERSION
  spec.authors = ["sidekiq-killer contributors"]
  spec.summary = "Cancel one running Sidekiq job from a console in milliseconds, without restarting the process"
  spec.description = <<~DESC
    Killer.cancel(jid) stops a running Sidekiq job (or keeps a queued one from starting) from any
    process that reaches the same Redis. A small Rust core watches Redis for every job of a
    process with one native thread; workers only `include Killer::Cancellable`.
  DESC
  spec.license = "MIT"
  spec.required_ruby_version = ">= 3.1"

  spec.files = Dir[
    "lib/**/*.rb", "exe/*", "ext/killer/extconf.rb", "ext/killer/Cargo.toml", "ext/killer/README.md",
    "ext/killer/src/**/*.rs", "crates/killer-core/Cargo.toml", "crates/killer-core/src/**/*.rs",
    "Cargo.toml", "Cargo.lock", ".cargo/config.toml", "web/views/*.erb", "README.md", "CHANGELOG.md", "LICENSE"
  ]
  spec.require_paths = ["lib"]
  spec.bindir = "exe"
  spec.executables = ["killer"]
  spec.extensions = ["ext/killer/extconf.rb"]

  spec.add_dependency "sidekiq", ">= 6.4", "< 9"
end
