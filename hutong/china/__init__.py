"""China's national codes: resident ID numbers, unified social credit codes, division codes."""
