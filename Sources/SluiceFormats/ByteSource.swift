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

/// Reads a UTF-16 stream (little or big endian, after its byte-order mark) as UTF-8, so every
/// reader downstream sees UTF-8 (Excel's "Unicode text" files are UTF-16LE). A lone surrogate
/// becomes a byte that is not UTF-8, so its row is rejected as invalid UTF-8.
public struct UTF16ChunkReader: ByteChunkReader {
    var inner: any ByteChunkReader
    let bigEndian: Bool
    var input: [UInt8] = []
    var inputAt = 0
    var output: [UInt8] = []
    var outputAt = 0
    var ended = false
    /// A high surrogate waiting for its low half.
    var high: UInt32? = nil

    /// `inner` positioned after the byte-order mark.
    public init(_ inner: any ByteChunkReader, bigEndian: Bool) {
        self.inner = inner
        self.bigEndian = bigEndian
    }

    /// `reader` (at the start of a file) as UTF-8 when the file starts with a UTF-16 byte-order
    /// mark, else `reopen()` — a fresh reader of the same bytes.
    public static func utf8(_ reader: any ByteChunkReader, reopen: () throws(SluiceError) -> any ByteChunkReader) throws(SluiceError) -> any ByteChunkReader {
        var r = reader
        let bom = UnsafeMutableRawBufferPointer.allocate(byteCount: 2, alignment: 1)
        defer { bom.deallocate() }
        var n = 0
        while n < 2 {
            let m = try r.read(into: UnsafeMutableRawBufferPointer(rebasing: bom[n...]))
            if m == 0 { break }
            n += m
        }
        guard n == 2, let be = byteOrderMark(Array(bom)) else { return try reopen() }
        return UTF16ChunkReader(r, bigEndian: be)
    }

    /// The endianness a byte-order mark at the start of `head` gives, or nil when there is none.
    public static func byteOrderMark(_ head: some Collection<UInt8>) -> Bool? {
        let h = Array(head.prefix(2))
        if h == [0xFF, 0xFE] { return false }
        if h == [0xFE, 0xFF] { return true }
        return nil
    }

    public mutating func read(into buffer: UnsafeMutableRawBufferPointer) throws(SluiceError) -> Int {
        while outputAt == output.count {
            if ended { return 0 }
            try refill()
        }
        let n = min(buffer.count, output.count - outputAt)
        for i in 0..<n { buffer[i] = output[outputAt + i] }
        outputAt += n
        return n
    }

    mutating func refill() throws(SluiceError) {
        output.removeAll(keepingCapacity: true)
        outputAt = 0
        if inputAt > 0 {
            input.removeFirst(inputAt)
            inputAt = 0
        }
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 1)
        defer { chunk.deallocate() }
        let n = try inner.read(into: chunk)
        input += chunk[0..<n]
        if n == 0 { ended = true }
        while inputAt + 1 < input.count {
            let a = UInt32(input[inputAt]), b = UInt32(input[inputAt + 1])
            inputAt += 2
            let unit = bigEndian ? a << 8 | b : b << 8 | a
            if let h = high {
                high = nil
                if unit >= 0xDC00 && unit <= 0xDFFF { append(0x10000 + ((h - 0xD800) << 10) + (unit - 0xDC00)); continue }
                output.append(0xFF)  // a high surrogate without its low half
            }
            if unit >= 0xD800 && unit <= 0xDBFF { high = unit; continue }
            if unit >= 0xDC00 && unit <= 0xDFFF { output.append(0xFF); continue }
            append(unit)
        }
        if ended && (high != nil || inputAt < input.count) { output.append(0xFF) }  // cut short
    }

    mutating func append(_ u: UInt32) {
        switch u {
        case ..<0x80: output.append(UInt8(u))
        case ..<0x800: output += [UInt8(0xC0 | u >> 6), UInt8(0x80 | u & 0x3F)]
        case ..<0x10000: output += [UInt8(0xE0 | u >> 12), UInt8(0x80 | (u >> 6) & 0x3F), UInt8(0x80 | u & 0x3F)]
        default: output += [UInt8(0xF0 | u >> 18), UInt8(0x80 | (u >> 12) & 0x3F), UInt8(0x80 | (u >> 6) & 0x3F), UInt8(0x80 | u & 0x3F)]
        }
    }
}
