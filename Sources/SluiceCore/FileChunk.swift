/// A line-aligned byte range of a file, with the line number it starts at and the file's
/// header (CSV) so that the range can be read on its own.
public struct FileChunk: Sendable, Hashable, Codable {
    public var start: Int64
    public var end: Int64
    public var firstLine: Int64
    /// The first line of the next chunk (this chunk's lines are `firstLine..<endLine`).
    public var endLine: Int64
    public var header: [String]?

    public init(start: Int64, end: Int64, firstLine: Int64, endLine: Int64, header: [String]?) {
        self.start = start
        self.end = end
        self.firstLine = firstLine
        self.endLine = endLine
        self.header = header
    }

    enum CodingKeys: String, CodingKey {
        case start, end, header
        case firstLine = "first_line", endLine = "end_line"
    }
}
