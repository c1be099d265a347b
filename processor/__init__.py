"""The mid-price processor: reads quotes from the ring and writes mid_prices.log and errors.log."""
