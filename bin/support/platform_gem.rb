# frozen_string_literal: true

# bin/package's second half: a precompiled gem for PLATFORM (x86_64-linux,
# aarch64-linux) from the source gem's spec and the libraries staged in
# STAGE/<major.minor>/, written to OUT.
# Usage: ruby bin/support/platform_gem.rb PLATFORM STAGE OUT
require "rubygems/package"
require "fileutils"
require "tmpdir"
require "open3"

platform, stage, out = ARGV
abort "usage: ruby bin/support/platform_gem.rb PLATFORM STAGE OUT" unless platform && stage && out
root = File.expand_path("../..", __dir__)
rubies = Dir[File.join(stage, "*", "killer.so")].map { |f| File.basename(File.dirname(f)) }.sort
abort "bin/package: no library staged in #{stage}" if rubies.empty?

# The newest glibc symbol version each library needs: the oldest glibc it
# loads on. readelf reads any architecture's ELF (objdump only the host's).
glibc = rubies.to_h do |ruby|
  versions, status = Open3.capture2("readelf", "-W", "-V", File.join(stage, ruby, "killer.so"))
  abort "bin/package: readelf could not read #{ruby}/killer.so" unless status.success?
  [ruby, versions.scan(/GLIBC_([\d.]+)/).flatten.max_by { |v| Gem::Version.new(v) }]
end

spec = Gem::Specification.load(File.join(root, "sidekiq-killer.gemspec"))
spec.platform = Gem::Platform.new(platform)
spec.extensions = []
# Nothing to compile: no Rust sources, no extconf.rb.
spec.files = spec.files.reject { |f| f.start_with?("ext/", "crates/", ".cargo/") || f.start_with?("Cargo.") }
spec.files += rubies.map { |ruby| "lib/killer/#{ruby}/killer.so" }
# What RubyGems can say: from the oldest to the newest Ruby built for. A
# Ruby in between without its library (3.2) gets a LoadError naming the
# source gem.
major, minor = rubies.last.split(".").map(&:to_i)
spec.required_ruby_version = [">= #{rubies.first}", "< #{major}.#{minor + 1}.dev"]
spec.metadata["precompiled_for"] =
  rubies.map { |ruby| "ruby #{ruby} (glibc >= #{glibc[ruby]})" }.join(", ")

Dir.mktmpdir("killer-package") do |dir|
  spec.files.each do |f|
    from = f.end_with?("killer.so") ? File.join(stage, f.split("/")[-2], "killer.so") : File.join(root, f)
    FileUtils.mkdir_p(File.join(dir, File.dirname(f)))
    FileUtils.cp(from, File.join(dir, f))
  end
  file = Dir.chdir(dir) { Gem::Package.build(spec) }
  FileUtils.mv(File.join(dir, file), File.join(out, file))
  size = File.size(File.join(out, file)) / 1024.0 / 1024
  warn format("bin/package: %s/%s (precompiled: %s; %.1f MB)", out, file, spec.metadata["precompiled_for"], size)
end
