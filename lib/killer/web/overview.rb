# frozen_string_literal: true

require "json"

module Killer
  module Web
    # What the Killer tab shows, read once per page: Sidekiq's own process
    # and work sets (through Sidekiq's API), and Killer's records (one
    # Killer::Native::Client call, two Redis round trips).
    class Overview
      # A cancellable job running somewhere in the cluster. `thread`,
      # `queue` and `args` come from Sidekiq's work set, which lags by up to
      # one Sidekiq heartbeat; nil until then.
      Job = Struct.new(:jid, :class_name, :process, :thread, :queue, :args, :started_at, :cancel_requested,
                       keyword_init: true) do
        # Seconds since the job started.
        def runtime = Time.now - started_at
      end

      # One request in the audit trail. `outcome`: "requested", "cancelled",
      # "finished before cancel" or "expired" (the status is gone:
      # cancel_ttl passed). `latency` in seconds from request to outcome.
      Cancel = Struct.new(:jid, :class_name, :requested_at, :by, :reason, :outcome, :latency, :requests, :last_by,
                          keyword_init: true)

      # A Sidekiq process, with Killer's report of it when there is one.
      # `memory`: { rss_mb:, limit_mb:, hard_limit_mb:, state:, reason:,
      # top_growers: [{ class:, jid:, grew_mb: }], cgroup: (memory_source
      # :cgroup) { version:, path:, usage_mb:, working_set_mb:, limit_mb: }
      # or nil }, or nil without MemoryMiddleware.
      Process = Struct.new(:identity, :hostname, :pid, :busy, :concurrency, :quiet, :reported, :memory,
                           keyword_init: true)

      # A class switched off (Killer.cancel_class), until `until`.
      Switch = Struct.new(:class_name, :until, :at, :by, :reason, keyword_init: true)

      # One step of a recycle somewhere in the cluster.
      Recycle = Struct.new(:at, :process, :state, :rss_mb, :limit_mb, :message, keyword_init: true)

      OUTCOMES = {
        "requested" => "requested", "cancelled" => "cancelled", "finished" => "finished before cancel"
      }.freeze

      attr_reader :jobs, :cancels, :processes, :recycles, :switches

      # Reads everything; `limit` cancels and recycle events at most.
      # Raises Killer::Error if Killer's Redis cannot be read.
      def self.load(client: Killer.configuration.client, limit: 50)
        new(client, limit)
      end

      # [job Hash, queue] of one entry of Sidekiq's work set: a Hash whose
      # payload is parsed (Sidekiq 6) or a Sidekiq::Work whose payload is
      # the job's JSON (7, 8).
      def self.work_entry(work)
        payload, queue = work.respond_to?(:payload) ? [work.payload, work.queue] : [work["payload"], work["queue"]]
        payload = JSON.parse(payload) if payload.is_a?(String)
        [payload.is_a?(Hash) ? payload : {}, queue]
      end

      # Use Overview.load.
      def initialize(client, limit)
        sidekiq_processes = ::Sidekiq::ProcessSet.new.to_a
        hosts = sidekiq_processes.map { |p| [p["hostname"].to_s, Integer(p["pid"])] }
        cancels, reports, recycles = client.overview(hosts, limit)
        reports = reports.map { |r| r && JSON.parse(r) }
        work = work_by_jid
        reported = sidekiq_processes.zip(reports)
        @processes = reported.map { |p, report| process(p, report) }
        @jobs = reported.flat_map do |p, report|
          (report ? report["jobs"] : []).map { |j| job(j, p["identity"], work[j["jid"]]) }
        end.sort_by(&:started_at)
        classes = @jobs.to_h { |j| [j.jid, j.class_name] }
        # The audit trail also keeps class switches; the switches table shows those.
        @cancels = cancels.map { |record, status| [JSON.parse(record), status] }
                          .reject { |record, _| record["kind"] }
                          .map { |record, status| cancel(record, status, classes) }
        @switches = client.switches.map do |name, until_ms, at_ms, by, reason|
          Switch.new(class_name: name, until: time(until_ms), at: time(at_ms), by: by, reason: reason)
        end
        @recycles = recycles.map { |e| recycle(JSON.parse(e)) }
      end

      private

      # jid => [process identity, thread id, queue, args] from Sidekiq's
      # work set (Sidekiq 7+ yields Sidekiq::Work, 6 a Hash).
      def work_by_jid
        set = defined?(::Sidekiq::WorkSet) ? ::Sidekiq::WorkSet.new : ::Sidekiq::Workers.new
        set.each_with_object({}) do |(identity, tid, work), by_jid|
          payload, queue = Overview.work_entry(work)
          by_jid[payload["jid"]] = [identity, tid, queue, payload["args"]] if payload["jid"]
        end
      end

      def job(report, identity, work)
        _, tid, queue, args = work
        Job.new(jid: report["jid"], class_name: report["class"], process: identity, thread: tid, queue: queue,
                args: args, started_at: time(report["started_at"]), cancel_requested: report["cancel_requested"])
      end

      def process(sidekiq, report)
        Process.new(identity: sidekiq["identity"], hostname: sidekiq["hostname"], pid: sidekiq["pid"],
                    busy: sidekiq["busy"].to_i, concurrency: sidekiq["concurrency"].to_i,
                    quiet: sidekiq["quiet"].to_s == "true", reported: !report.nil?,
                    memory: report && memory(report["memory"]))
      end

      def memory(m)
        return nil unless m

        { rss_mb: mb(m["bytes"]), limit_mb: mb(m["soft"]), hard_limit_mb: m["hard"] && mb(m["hard"]),
          state: m["state"], reason: m["reason"].to_s.empty? ? nil : m["reason"],
          top_growers: m["top"].map { |g| { class: g["class"], jid: g["jid"], grew_mb: mb(g["grew"]) } },
          cgroup: (c = m["cgroup"]) && { version: c["version"], path: c["dir"], usage_mb: mb(c["usage"]),
                                         working_set_mb: mb(c["working_set"]), limit_mb: c["limit"] && mb(c["limit"]) } }
      end

      def cancel(record, status, classes)
        state = status["state"]
        requested = Integer(status["requested_at"] || record["at"])
        ended = status["#{state}_at"] if %w[cancelled finished].include?(state)
        Cancel.new(jid: record["jid"], class_name: status["class"] || classes[record["jid"]],
                   requested_at: time(record["at"]), by: record["by"], reason: record["reason"],
                   outcome: OUTCOMES.fetch(state, "expired"),
                   latency: ended && [(Integer(ended) - requested) / 1000.0, 0].max,
                   requests: Integer(status["requests"] || 1), last_by: status["last_by"])
      end

      def recycle(event)
        Recycle.new(at: time(event["at"]), process: "#{event["hostname"]}:#{event["pid"]}", state: event["state"],
                    rss_mb: mb(event["bytes"]), limit_mb: mb(event["limit"]), message: event["message"])
      end

      def time(ms) = Time.at(Integer(ms) / 1000.0)

      def mb(bytes) = (Integer(bytes) / 1_048_576.0).round(1)
    end
  end
end
