/// A single typed value, for tests, rendering, inference and other paths that are not hot.
/// Batches never store values this way; see ``Column``.
public enum Value: Sendable, Hashable {
    case null
    case int64(Int64)
    case float64(Double)
    case decimal(ExactDecimal)
    case bool(Bool)
    case text(String)
    case date(days: Int64)
    case timestamp(micros: Int64)
    case timestamptz(micros: Int64)
    /// Microseconds since midnight.
    case time(micros: Int64)
    /// 16 bytes.
    case uuid([UInt8])
    case json(String)
    case bytes([UInt8])

    public var isNull: Bool { if case .null = self { true } else { false } }
}
