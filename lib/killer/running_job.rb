# frozen_string_literal: true

module Killer
  # A job this process is running, as the dispatcher sees it.
  # `cancel_jid` is set (under the runtime's lock) when a cancel or its
  # deadline reached it; `stop_class` is then Cancelled or Timeout.
  RunningJob = Struct.new(:token, :thread, :jid, :cancel_jid, :stop_class, keyword_init: true)
end
