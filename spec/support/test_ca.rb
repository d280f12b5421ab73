# frozen_string_literal: true

require "openssl"
require "tmpdir"

# A throwaway certificate authority, made with Ruby's OpenSSL for one run:
# a server certificate for 127.0.0.1 / localhost and a client certificate,
# written as PEM files in a temporary directory.
class TestCA
  attr_reader :dir

  def initialize(name = "Killer Test CA")
    @dir = Dir.mktmpdir("killer-ca")
    @key = OpenSSL::PKey::RSA.new(2048)
    @cert = sign(subject: name, key: @key, ca: true)
    write("ca.pem", @cert.to_pem)
  end

  def ca_file = File.join(@dir, "ca.pem")

  # [cert path, key path] for the server (127.0.0.1 and localhost).
  def server
    @server ||= issue("server", "IP:127.0.0.1,DNS:localhost")
  end

  # [cert path, key path] for a client certificate.
  def client
    @client ||= issue("client", nil)
  end

  def remove = FileUtils.rm_rf(@dir)

  private

  def issue(name, alt_names)
    key = OpenSSL::PKey::RSA.new(2048)
    cert = sign(subject: "killer-#{name}", key: key, alt_names: alt_names)
    [write("#{name}.pem", cert.to_pem), write("#{name}-key.pem", key.to_pem)]
  end

  def sign(subject:, key:, ca: false, alt_names: nil)
    cert = OpenSSL::X509::Certificate.new
    cert.version = 2
    cert.serial = OpenSSL::BN.rand(64)
    cert.subject = OpenSSL::X509::Name.parse("/CN=#{subject}")
    cert.issuer = ca ? cert.subject : @cert.subject
    cert.public_key = key.public_key
    cert.not_before = Time.now - 60
    cert.not_after = Time.now + 86_400
    ext = OpenSSL::X509::ExtensionFactory.new
    ext.subject_certificate = cert
    ext.issuer_certificate = ca ? cert : @cert
    if ca
      cert.add_extension(ext.create_extension("basicConstraints", "CA:TRUE", true))
      cert.add_extension(ext.create_extension("keyUsage", "keyCertSign,cRLSign", true))
    else
      cert.add_extension(ext.create_extension("basicConstraints", "CA:FALSE", true))
      cert.add_extension(ext.create_extension("keyUsage", "digitalSignature,keyEncipherment", true))
      cert.add_extension(ext.create_extension("extendedKeyUsage", "serverAuth,clientAuth", false))
      cert.add_extension(ext.create_extension("subjectAltName", alt_names, false)) if alt_names
    end
    cert.sign(ca ? key : @key, OpenSSL::Digest.new("SHA256"))
    cert
  end

  def write(name, text)
    path = File.join(@dir, name)
    File.write(path, text)
    path
  end
end
