# frozen_string_literal: true

module Killer
  # Which thread runs which job, by the core's token: the one owner of that
  # fact in Ruby (the core owns everything else about a job). It registers,
  # unregisters and raises under one lock, so once a job is unregistered no
  # raise can follow it into the next job of its thread.
  class Jobs
    def initialize
      @threads = {}
      @lock = Mutex.new
    end

    # Job `token` runs on `thread` from now on.
    def register(token, thread)
      @lock.synchronize { @threads[token] = thread }
    end

    # Job `token` is over: no raise reaches its thread after this returns.
    def unregister(token)
      @lock.synchronize { @threads.delete(token) }
    end

    # Raises `exception` into the thread of job `token` if it still runs
    # there (yielding the thread first); false if it does not.
    def deliver(token, exception)
      @lock.synchronize do
        thread = @threads[token]
        return false unless thread

        yield thread if block_given?
        thread.raise(exception)
        true
      end
    end
  end
end
