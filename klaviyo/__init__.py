"""klaviyo"""
