public import SluiceCore

/// A sequential reader of raw bytes: a file, a decompressor, memory in tests.
/// `read` fills as much of `buffer` as it can and returns 0 only at the end of input.
public protocol ByteChunkReader {
    mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int
}

/// Bytes held in memory, handed out in chunks of at most `chunkSize` (tests use tiny
/// chunks to split records at every possible boundary).
public struct MemoryChunkReader: ByteChunkReader {
    let bytes: [UInt8]
    let chunkSize: Int
    var position = 0

    public init(_ bytes: [UInt8], chunkSize: Int = 1 << 20) {
        self.bytes = bytes
        self.chunkSize = max(1, chunkSize)
    }

    public init(_ text: String, chunkSize: Int = 1 << 20) {
        self.init(Array(text.utf8), chunkSize: chunkSize)
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        let n = min(buffer.count, chunkSize, bytes.count - position)
        if n <= 0 { return 0 }
        bytes.withUnsafeBytes { src in
            buffer.baseAddress!.copyMemory(from: src.baseAddress! + position, byteCount: n)
        }
        position += n
        return n
    }
}

/// Reads a single-byte encoded stream as UTF-8, so every reader downstream sees UTF-8.
public struct TranscodingChunkReader: ByteChunkReader {
    var inner: any ByteChunkReader
    let encoding: SingleByteEncoding
    /// Output not yet handed out (only when the caller's buffer is under three bytes).
    var pending: [UInt8] = []

    public init(_ inner: any ByteChunkReader, encoding: SingleByteEncoding) {
        self.inner = inner
        self.encoding = encoding
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        if buffer.count == 0 { return 0 }
        if !pending.isEmpty || buffer.count < 3 {
            if pending.isEmpty {
                guard try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<1])) == 1 else { return 0 }
                append(buffer[0], to: &pending)
            }
            let n = min(pending.count, buffer.count)
            for i in 0..<n { buffer[i] = pending[i] }
            pending.removeFirst(n)
            return n
        }
        // Read a third of the buffer into its tail and transcode forward from the front: at
        // most three bytes out per byte in, so the output never overtakes unread input.
        let want = buffer.count / 3
        let tail = buffer.count - want
        let n = try inner.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[tail..<buffer.count]))
        var out = 0
        for i in 0..<n {
            let b = buffer[tail + i]
            if b < 0x80 {
                buffer[out] = b
                out += 1
            } else {
                out += write(encoding.scalar(b), into: buffer, at: out)
            }
        }
        return out
    }

    func append(_ b: UInt8, to out: inout [UInt8]) {
        var tmp: (UInt8, UInt8, UInt8) = (0, 0, 0)
        let n = withUnsafeMutableBytes(of: &tmp) { t in b < 0x80 ? { t[0] = b; return 1 }() : write(encoding.scalar(b), into: t, at: 0) }
        withUnsafeBytes(of: &tmp) { t in out.append(contentsOf: t[0..<n]) }
    }

    /// Writes `u` (< 0x10000) as UTF-8 at `at`; returns the byte count.
    @inline(__always) func write(_ u: UInt32, into buffer: UnsafeMutableRawBufferPointer, at: Int) -> Int {
        if u < 0x80 {
            buffer[at] = UInt8(u)
            return 1
        }
        if u < 0x800 {
            buffer[at] = UInt8(0xC0 | (u >> 6))
            buffer[at + 1] = UInt8(0x80 | (u & 0x3F))
            return 2
        }
        buffer[at] = UInt8(0xE0 | (u >> 12))
        buffer[at + 1] = UInt8(0x80 | ((u >> 6) & 0x3F))
        buffer[at + 2] = UInt8(0x80 | (u & 0x3F))
        return 3
    }
}
