public import SluiceCore
import CCompressZlib

/// Inflates a gzip stream (several concatenated members allowed, as `cat a.gz b.gz` makes)
/// from another reader, chunk by chunk, with bounded memory.
public struct GzipChunkReader: ByteChunkReader {
    var upstream: any ByteChunkReader
    let state: ZStream
    var inputStart = 0
    var inputEnd = 0
    var upstreamDone = false
    var finished = false

    /// zlib's stream and the compressed input buffer; ended and freed exactly once.
    final class ZStream {
        var z = z_stream()
        let input: UnsafeMutableRawBufferPointer
        init(inputChunk: Int) throws(SluiceError) {
            input = .allocate(byteCount: inputChunk, alignment: 16)
            let rc = CCompressZlib_inflateInit2(&z, 15 + 32)  // gzip or zlib header, auto-detected
            guard rc == Z_OK else {
                input.deallocate()
                throw SluiceError(.io, "cannot start the gzip decoder (zlib error \(rc))")
            }
        }
        deinit {
            inflateEnd(&z)
            input.deallocate()
        }
    }

    public init(_ upstream: any ByteChunkReader, inputChunk: Int = 256 << 10) throws(SluiceError) {
        self.upstream = upstream
        self.state = try ZStream(inputChunk: inputChunk)
    }

    mutating func refill() throws(SluiceError) {
        let n = try upstream.read(into: state.input)
        inputStart = 0
        inputEnd = n
        if n == 0 { upstreamDone = true }
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        if finished || buffer.count == 0 { return 0 }
        while true {
            if inputStart == inputEnd && !upstreamDone { try refill() }
            let z = state
            z.z.next_in = z.input.baseAddress!.assumingMemoryBound(to: Bytef.self) + inputStart
            z.z.avail_in = UInt32(inputEnd - inputStart)
            z.z.next_out = buffer.baseAddress!.assumingMemoryBound(to: Bytef.self)
            z.z.avail_out = UInt32(min(buffer.count, Int(UInt32.max)))
            let before = z.z.avail_in
            let rc = inflate(&z.z, Z_NO_FLUSH)
            let produced = buffer.count - Int(z.z.avail_out)
            inputStart += Int(before - z.z.avail_in)
            switch rc {
            case Z_OK, Z_BUF_ERROR:
                if produced > 0 { return produced }
                if upstreamDone && inputStart == inputEnd {
                    throw SluiceError(.malformedFile, "gzip stream is truncated")
                }
            case Z_STREAM_END:
                // Another member may follow.
                if inputStart == inputEnd && !upstreamDone { try refill() }
                if inputStart < inputEnd { inflateReset(&z.z) } else { finished = true }
                if produced > 0 || finished { return produced }
            default:
                throw SluiceError(.malformedFile, "not a valid gzip stream (zlib error \(rc))")
            }
        }
    }
}

/// True when the bytes start with the gzip magic number.
public func looksGzipped(_ prefix: some Collection<UInt8>) -> Bool {
    var it = prefix.makeIterator()
    return it.next() == 0x1F && it.next() == 0x8B
}
