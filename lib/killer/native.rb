# frozen_string_literal: true

module Killer
  # The compiled core's namespace (ext/killer): what Killer's own Ruby calls.
  # Not a public API. These Structs are what the core hands to Ruby; they
  # are defined here, before the library loads, which looks them up once.
  module Native
    # A raise for the dispatcher: into the thread running job `token` (of
    # class `class_name`), for `jid` (the id the cancel named), the
    # `attempt`-th time; `reason` is :cancel (Killer::Cancelled) or :timeout
    # (Killer::Timeout); `requested_at` when the cancel was recorded (ms
    # since the epoch; nil for a timeout).
    Cancel = Struct.new(:token, :jid, :attempt, :reason, :class_name, :requested_at)
    # A line for Sidekiq's logger: `level` :debug/:info/:warn/:error, `jid` or nil.
    LogLine = Struct.new(:level, :jid, :message)
    # Lease holding `id` (lease `name`) could not be renewed; `reason` says why.
    LeaseLost = Struct.new(:id, :name, :reason)
    # The process is about to quiet and recycle; `running` are Growers.
    Recycling = Struct.new(:reason, :bytes, :running)
    # The recycler took a step: `state` a Symbol (:over_limit, :draining,
    # :stopping, ...), what it logged, memory and limit (bytes), and the
    # biggest growers so far (Growers).
    RecycleStep = Struct.new(:state, :message, :bytes, :limit, :top_growers)
    # A job and what it grew the process by (bytes; negative: shrank).
    Grower = Struct.new(:class_name, :jid, :grew)
    # What Killer.memory_status is made from (bytes; `state` a Symbol).
    # `cgroup`: with memory_source :cgroup, { version:, dir:, usage:,
    # working_set:, limit:, limit_dir: } (bytes; `bytes` is the working
    # set), else nil.
    MemoryStatus = Struct.new(:bytes, :soft, :hard, :state, :busy, :reason, :top_growers, :cgroup)
    # What is stopping a running job: the id a cancel named, or its jid and
    # :timeout.
    Stop = Struct.new(:jid, :reason)
  end
end

# The compiled core. The precompiled gem (x86_64-linux) carries one per
# Ruby it was built for, as lib/killer/<major.minor>/killer.so (rb-sys's
# layout); the source gem builds one through ext/killer/extconf.rb, and a
# checkout through `rake compile` (bin/setup), as lib/killer/killer.so.
require "rbconfig"

module Killer
  module Native
    # The Rubies a precompiled gem has a library for ([] in the source gem).
    PRECOMPILED = Dir[File.join(__dir__, "[0-9]*.[0-9]*", "killer.#{RbConfig::CONFIG["DLEXT"]}")]
                  .map { |f| File.basename(File.dirname(f)) }.sort.freeze

    def self.load_library
      ruby = RUBY_VERSION[/\A\d+\.\d+/]
      return require("killer/killer") if PRECOMPILED.empty?

      unless PRECOMPILED.include?(ruby)
        raise LoadError, "this sidekiq-killer gem (#{RUBY_PLATFORM}, precompiled) has its native library for " \
                         "Ruby #{PRECOMPILED.join(" and ")}, not Ruby #{ruby}; install the source gem instead " \
                         "(it needs Rust's cargo): gem install sidekiq-killer --platform ruby"
      end
      begin
        require "killer/#{ruby}/killer"
      rescue LoadError => e
        # A binary linked against a newer glibc than this machine's, say.
        raise LoadError, "sidekiq-killer's precompiled native library does not load here (#{e.message}); " \
                         "install the source gem instead (it needs Rust's cargo): " \
                         "gem install sidekiq-killer --platform ruby"
      end
    end
  end
end

begin
  Killer::Native.load_library
rescue LoadError => e
  raise if Killer::Native::PRECOMPILED.any?

  raise LoadError, "sidekiq-killer's native extension is not built (#{e.message}); " \
                   "run bin/setup (or `rake compile`) in the checkout, or reinstall the gem"
end
