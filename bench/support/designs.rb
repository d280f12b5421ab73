# frozen_string_literal: true

require "killer"
require "logger"

# The three ways of stopping a running job the cancel benchmark compares.
# Each has a `cancel(jid)` for the canceller's side and a `run(jid) { body }`
# for the worker's side; the worker reports when the body really stopped.
module Designs
  # Ours: Killer.cancel; one native watcher + one dispatcher per process.
  class Killer
    def self.label = "sidekiq-killer"
    def self.durable = "yes"

    def initialize(url)
      ::Killer.configure do |c|
        c.redis_url = url
        c.logger = Logger.new(File::NULL)
      end
    end

    def cancel(jid) = ::Killer.cancel(jid)
    def start_worker = ::Killer.start

    def run(jid, &body)
      job = Job.new
      job.jid = jid
      job.body = body
      job.perform
    end

    class Job
      include ::Killer::Cancellable
      attr_accessor :jid, :body

      def perform = body.call
    end
  end

  # (a) The naive recipe: per job, a watcher thread polls `DEL key` every
  # 100 ms and Thread#kill's the job's thread when it finds the key.
  class ThreadPerJob
    def self.label = "(a) thread-per-job, DEL poll 100 ms"
    def self.durable = "yes"

    def initialize(url)
      @url = url
      @redis = Redis.new(url: url)
    end

    def cancel(jid) = @redis.set("naive:cancel:#{jid}", 1, ex: 3600)
    def start_worker = nil

    # The job runs in a victim thread of its own, watched by a second thread.
    def run(jid, &body)
      redis = @redis
      victim = Thread.new(&body)
      watcher = Thread.new do
        loop do
          break victim.kill if redis.del("naive:cancel:#{jid}") == 1

          sleep 0.1
        end
      end
      victim.join
    ensure
      watcher&.kill
    end
  end

  # (b) The fastest peer design: one subscriber thread per process, a
  # registry of running jobs, Thread#raise on a message. Not durable: a
  # message sent while nobody listens is lost.
  class PubSubOnly
    def self.label = "(b) pub/sub only, Thread#raise"
    def self.durable = "no"

    Stop = Class.new(Exception) # rubocop:disable Lint/InheritException

    def initialize(url)
      @url = url
      @redis = Redis.new(url: url)
      @running = {}
      @lock = Mutex.new
    end

    def cancel(jid) = @redis.publish("pubsub:cancel", jid)

    def start_worker
      ready = Queue.new
      Thread.new do
        Redis.new(url: @url).subscribe("pubsub:cancel") do |on|
          on.subscribe { ready << true }
          on.message { |_, jid| @lock.synchronize { @running[jid]&.raise(Stop) } }
        end
      end
      ready.pop
    end

    def run(jid)
      @lock.synchronize { @running[jid] = Thread.current }
      yield
    rescue Stop
      nil
    ensure
      @lock.synchronize { @running.delete(jid) }
    end
  end

  ALL = { "killer" => Killer, "thread_per_job" => ThreadPerJob, "pubsub_only" => PubSubOnly }.freeze
end
