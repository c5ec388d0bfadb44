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
