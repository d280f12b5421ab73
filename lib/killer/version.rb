# frozen_string_literal: true

module Killer
  VERSION = "0.1.0"
end
