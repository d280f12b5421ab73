# frozen_string_literal: true

module Killer
  # A job this process is running, as the dispatcher sees it.
  # `cancel_jid` is set (under the runtime's lock) when a cancel reached it.
  RunningJob = Struct.new(:token, :thread, :jid, :cancel_jid, keyword_init: true)
end
