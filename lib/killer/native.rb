# frozen_string_literal: true

module Killer
  # The compiled core's namespace (ext/killer): what Killer's own Ruby calls.
  # Not a public API. These Structs are what the core hands to Ruby; they
  # are defined here, before the library loads, which looks them up once.
  module Native
    # A raise for the dispatcher: into the thread running job `token`, for
    # `jid` (the id the cancel named), the `attempt`-th time; `reason` is
    # :cancel (Killer::Cancelled) or :timeout (Killer::Timeout).
    Cancel = Struct.new(:token, :jid, :attempt, :reason)
    # A line for Sidekiq's logger: `level` :debug/:info/:warn/:error, `jid` or nil.
    LogLine = Struct.new(:level, :jid, :message)
    # Lease holding `id` (lease `name`) could not be renewed; `reason` says why.
    LeaseLost = Struct.new(:id, :name, :reason)
    # The process is about to quiet and recycle; `running` are Growers.
    Recycling = Struct.new(:reason, :bytes, :running)
    # A job and what it grew the process by (bytes; negative: shrank).
    Grower = Struct.new(:class_name, :jid, :grew)
    # What Killer.memory_status is made from (bytes; `state` a Symbol).
    MemoryStatus = Struct.new(:bytes, :soft, :hard, :state, :busy, :reason, :top_growers)
    # What is stopping a running job: the id a cancel named, or its jid and
    # :timeout.
    Stop = Struct.new(:jid, :reason)
  end
end

# The compiled core. In a checkout it is built by `rake compile` (bin/setup);
# in an installed gem, by RubyGems through ext/killer/extconf.rb.
begin
  require "killer/killer"
rescue LoadError => e
  raise LoadError, "sidekiq-killer's native extension is not built (#{e.message}); " \
                   "run bin/setup (or `rake compile`) in the checkout, or reinstall the gem"
end
